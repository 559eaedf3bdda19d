// A backbone that works (flatten, linear, l2-normalise) until its `fail_after`-th forward
// call, then throws: the executor must cancel cleanly and report the error once.
#include <torch/torch.h>

#include "rguard/backbone.hpp"
#include "rguard/error.hpp"

namespace {

class FailingBackbone final : public rguard::Backbone {
 public:
  explicit FailingBackbone(const rguard::Params& p) : fail_after_(p.get_int("fail_after")) {}
  void init(const rguard::ImageShape& input, std::uint64_t seed) override {
    torch::manual_seed(seed);
    linear_ = torch::nn::Linear(input.channels * input.height * input.width, 8);
  }
  at::Tensor forward(const at::Tensor& images) override {
    if (calls_++ >= fail_after_) throw rguard::Error("failing_backbone: forward failed on purpose");
    return torch::nn::functional::normalize(linear_->forward(images.flatten(1)),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  }
  void set_training(bool training) override { linear_->train(training); }
  void to(const c10::Device& device) override { linear_->to(device); }
  rguard::NamedTensors state() override {
    rguard::NamedTensors out;
    for (const auto& item : linear_->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  }
  std::vector<at::Tensor> trainable_parameters() override { return linear_->parameters(); }
  std::int64_t embedding_dim() const override { return 8; }
  const rguard::TrainConfig& train_config() const override { return config_; }

 private:
  std::int64_t fail_after_;
  std::int64_t calls_ = 0;
  rguard::TrainConfig config_;  // epochs = 0: never trained
  torch::nn::Linear linear_{nullptr};
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Backbone, "failing_backbone", "0", "fails on purpose after N forward calls",
              FailingBackbone,
              (std::vector<rguard::ParamSpec>{{.name = "fail_after", .type = rguard::ParamType::Int,
                                               .default_value = "3", .doc = "forward calls that succeed", .min = 0}}))
