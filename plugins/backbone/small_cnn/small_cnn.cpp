// small_cnn: conv(3x3) + ReLU + max-pool(2) blocks, a linear layer to k dimensions and l2
// normalisation; input normalisation is the first layer, so noise is added before it.
// Inference (no autograd, CPU) runs the same weights through oneDNN with prepacked
// convolution weights and activations kept in oneDNN's blocked layout between layers:
// ~3x the throughput of the eager modules at certification batch sizes
// (docs/performance.md); the eager modules serve training and attacks.
#include <fmt/format.h>
#include <torch/torch.h>

#include "rguard/backbone.hpp"
#include "onednn.hpp"
#include "rguard/error.hpp"
#include "rguard/training.hpp"

namespace {

using rguard::ParamSpec;
using rguard::ParamType;

class SmallCnn final : public rguard::Backbone {
 public:
  explicit SmallCnn(const rguard::Params& p)
      : channels_(p.get_int_list("channels")),
        dim_(p.get_int("embedding_dim")),
        mean_(p.get_float("input_mean")),
        std_(p.get_float("input_std")),
        config_(rguard::parse_train_config(p)) {
    if (channels_.empty()) throw rguard::Error("backbone.channels: expected at least one convolution width");
    for (auto c : channels_)
      if (c < 1) throw rguard::Error(fmt::format("backbone.channels: widths must be >= 1, got {}", c));
  }

  void init(const rguard::ImageShape& input, std::uint64_t seed) override {
    torch::manual_seed(seed);
    net_ = torch::nn::Sequential();
    std::int64_t c = input.channels, h = input.height, w = input.width;
    for (auto width : channels_) {
      if (h < 2 || w < 2)
        throw rguard::Error(fmt::format("backbone small_cnn: {} pooling stages do not fit {}x{} images; use fewer channels",
                                        channels_.size(), input.height, input.width));
      net_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, width, 3).padding(1)));
      net_->push_back(torch::nn::ReLU());
      net_->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
      c = width;
      h /= 2;
      w /= 2;
    }
    net_->push_back(torch::nn::Flatten());
    net_->push_back(torch::nn::Linear(c * h * w, dim_));
    net_->eval();
  }

  at::Tensor forward(const at::Tensor& images) override {
    auto x = (images - mean_) / std_;
    auto e = rguard::plugins::onednn_applies(images, *net_) ? onednn_forward(x) : net_->forward(x);
    return torch::nn::functional::normalize(e, torch::nn::functional::NormalizeFuncOptions().dim(1));
  }

  void set_training(bool training) override { net_->train(training); }
  void to(const c10::Device& device) override { net_->to(device); }

  rguard::NamedTensors state() override {
    rguard::NamedTensors out;
    for (const auto& item : net_->named_parameters()) out.emplace_back(item.key(), item.value());
    for (const auto& item : net_->named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
  }

  std::vector<at::Tensor> trainable_parameters() override { return net_->parameters(); }
  std::int64_t embedding_dim() const override { return dim_; }
  const rguard::TrainConfig& train_config() const override { return config_; }

 private:
  std::vector<std::int64_t> channels_;
  std::int64_t dim_;
  double mean_, std_;
  rguard::TrainConfig config_;
  torch::nn::Sequential net_{nullptr};

  rguard::plugins::PackedSequential packed_;  // oneDNN copies of net_'s weights

  at::Tensor onednn_forward(const at::Tensor& normalized) {
    const auto packed = packed_.current(net_);
    auto x = normalized.contiguous().to_mkldnn();
    for (std::size_t i = 0; i < packed->conv_weights.size(); ++i) x = at::max_pool2d(at::relu(packed->conv(x, i)), {2, 2});
    return at::linear(x.to_dense().flatten(1), packed->linear_weight, packed->linear_bias);
  }
};

std::vector<ParamSpec> schema() {
  std::vector<ParamSpec> specs{
      {.name = "embedding_dim", .type = ParamType::Int, .default_value = "64", .doc = "k, the embedding dimension", .min = 1},
      {.name = "channels", .type = ParamType::IntList, .default_value = "[32, 64]",
       .doc = "width of each conv3x3+ReLU+maxpool2 block", .min = 1},
      {.name = "input_mean", .type = ParamType::Float, .default_value = "0.2860",
       .doc = "pixel mean subtracted inside the model (Fashion-MNIST's)"},
      {.name = "input_std", .type = ParamType::Float, .default_value = "0.3530",
       .doc = "pixel std divided inside the model (Fashion-MNIST's)", .min = 0, .min_exclusive = true},
  };
  for (auto& spec : rguard::train_param_specs()) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Backbone, "small_cnn", "1.1",
              "small CNN for 28x28-like images, l2-normalised k-dim output, trained by the pipeline", SmallCnn, schema())
