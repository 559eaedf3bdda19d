// A backbone that works (flatten, linear, l2-normalise) for its first `fail_after` forward
// calls, then fails the way `fault` says: the executor must stop cleanly, name the plugin
// and what it was doing, and keep what the cache already holds.
#include <limits>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "rguard/backbone.hpp"
#include "rguard/error.hpp"

namespace {

class FailingBackbone final : public rguard::Backbone {
 public:
  explicit FailingBackbone(const rguard::Params& p)
      : fail_after_(p.get_int("fail_after")), fault_(p.get_string("fault")), config_(rguard::parse_train_config(p)) {
    if (fault_ == "construct") throw std::runtime_error("failing_backbone: constructor failed on purpose");
  }
  void init(const rguard::ImageShape& input, std::uint64_t seed) override {
    torch::manual_seed(seed);
    linear_ = torch::nn::Linear(input.channels * input.height * input.width, 8);
  }
  at::Tensor forward(const at::Tensor& images) override {
    auto e = torch::nn::functional::normalize(linear_->forward(images.flatten(1)),
                                              torch::nn::functional::NormalizeFuncOptions().dim(1));
    if (calls_++ < fail_after_) return e;
    if (fault_ == "throw") throw rguard::Error("failing_backbone: forward failed on purpose");
    if (fault_ == "std") throw std::runtime_error("failing_backbone: std::runtime_error on purpose");
    if (fault_ == "torch") return e.matmul(torch::ones({3, 3}));  // LibTorch refuses: c10::Error
    if (fault_ == "foreign") throw 42;                             // not a std::exception
    if (fault_ == "nan") return e * std::numeric_limits<float>::quiet_NaN();
    if (fault_ == "zero") return e * 0;
    if (fault_ == "shape") return torch::cat({e, e.narrow(1, 0, 1)}, 1);  // one column too many
    if (fault_ == "dtype") return e.to(torch::kDouble);
    return e;
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
  std::string fault_;
  std::int64_t calls_ = 0;
  rguard::TrainConfig config_;
  torch::nn::Linear linear_{nullptr};
};

std::vector<rguard::ParamSpec> schema() {
  std::vector<rguard::ParamSpec> specs{
      {.name = "fail_after", .type = rguard::ParamType::Int, .default_value = "3", .doc = "forward calls that succeed",
       .min = 0},
      {.name = "fault", .type = rguard::ParamType::String, .default_value = "throw", .doc = "how it fails",
       .choices = "throw|std|torch|foreign|nan|zero|shape|dtype|construct|none"},
  };
  for (auto& spec : rguard::train_param_specs("0")) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Backbone, "failing_backbone", "0", "fails on purpose after N forward calls",
              FailingBackbone, schema())
