// mlp: an example backbone from outside rguard's tree. Flatten, one hidden ReLU layer, a
// linear map to k dimensions, l2 normalisation; trained by the pipeline like small_cnn.
#include <rguard/backbone.hpp>
#include <rguard/training.hpp>
#include <torch/torch.h>

namespace {

class Mlp final : public rguard::Backbone {
 public:
  explicit Mlp(const rguard::Params& p)
      : hidden_(p.get_int("hidden")), dim_(p.get_int("embedding_dim")), config_(rguard::parse_train_config(p)) {}

  void init(const rguard::ImageShape& input, std::uint64_t seed) override {
    torch::manual_seed(seed);
    net_ = torch::nn::Sequential(torch::nn::Flatten(),
                                 torch::nn::Linear(input.channels * input.height * input.width, hidden_),
                                 torch::nn::ReLU(), torch::nn::Linear(hidden_, dim_));
    net_->eval();
  }
  at::Tensor forward(const at::Tensor& images) override {
    return torch::nn::functional::normalize(net_->forward(images - 0.5),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  }
  void set_training(bool training) override { net_->train(training); }
  void to(const c10::Device& device) override { net_->to(device); }
  rguard::NamedTensors state() override {
    rguard::NamedTensors out;
    for (const auto& item : net_->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  }
  std::vector<at::Tensor> trainable_parameters() override { return net_->parameters(); }
  std::int64_t embedding_dim() const override { return dim_; }
  const rguard::TrainConfig& train_config() const override { return config_; }

 private:
  std::int64_t hidden_, dim_;
  rguard::TrainConfig config_;
  torch::nn::Sequential net_{nullptr};
};

std::vector<rguard::ParamSpec> schema() {
  std::vector<rguard::ParamSpec> specs{
      {.name = "hidden", .type = rguard::ParamType::Int, .default_value = "64", .doc = "hidden layer width", .min = 1},
      {.name = "embedding_dim", .type = rguard::ParamType::Int, .default_value = "16", .doc = "k", .min = 1},
  };
  for (auto& spec : rguard::train_param_specs()) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Backbone, "mlp", "1.0", "example out-of-tree backbone: a one-hidden-layer MLP", Mlp,
              schema())
