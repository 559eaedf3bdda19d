// dncnn: a DnCNN-style residual denoiser (Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian
// Denoiser", IEEE TIP 2017; the denoiser of Salman et al.'s denoised smoothing) for small
// images: conv3x3 + ReLU, depth - 2 more conv3x3 + ReLU, a conv3x3 back to the image's
// channels predicting the noise, D(x) = x - net(x). No batch norm: at these depths it
// buys nothing, and without it inference is the same function in training and eval mode.
// Every noisy sample goes through it, so it is sized against the backbone behind it
// (docs/performance.md): inference (no autograd, CPU) runs prepacked oneDNN convolutions
// with activations in oneDNN's blocked layout, as small_cnn does.
#include <fmt/format.h>
#include <torch/torch.h>

#include "rguard/denoiser.hpp"
#include "onednn.hpp"
#include "rguard/error.hpp"

namespace {

using rguard::ParamSpec;
using rguard::ParamType;

class DnCnn final : public rguard::Denoiser {
 public:
  explicit DnCnn(const rguard::Params& p)
      : depth_(p.get_int("depth")), features_(p.get_int("features")), config_(rguard::parse_denoiser_train_config(p)) {}

  void init(const rguard::ImageShape& input, std::uint64_t seed) override {
    torch::manual_seed(seed);
    net_ = torch::nn::Sequential();
    std::int64_t c = input.channels;
    for (std::int64_t layer = 0; layer + 1 < depth_; ++layer) {
      net_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, features_, 3).padding(1)));
      net_->push_back(torch::nn::ReLU());
      c = features_;
    }
    auto last = torch::nn::Conv2d(torch::nn::Conv2dOptions(c, input.channels, 3).padding(1));
    {
      // Start as the identity, D(x) = x: training only has to learn what to remove.
      torch::NoGradGuard no_grad;
      last->weight.zero_();
      last->bias.zero_();
    }
    net_->push_back(last);
    net_->eval();
  }

  at::Tensor forward(const at::Tensor& noisy) override {
    if (noisy.dim() != 4)
      throw rguard::Error(fmt::format("denoiser dncnn: expected images [batch, channels, height, width], got {} dimensions",
                                      noisy.dim()));
    return noisy - (rguard::plugins::onednn_applies(noisy, *net_) ? onednn_residual(noisy) : net_->forward(noisy));
  }

  void set_training(bool training) override { net_->train(training); }
  void to(const c10::Device& device) override { net_->to(device); }

  rguard::NamedTensors state() override {
    rguard::NamedTensors out;
    for (const auto& item : net_->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  }
  std::vector<at::Tensor> trainable_parameters() override { return net_->parameters(); }
  const rguard::DenoiserTrainConfig& train_config() const override { return config_; }

 private:
  std::int64_t depth_, features_;
  rguard::DenoiserTrainConfig config_;
  torch::nn::Sequential net_{nullptr};

  rguard::plugins::PackedSequential packed_;  // oneDNN copies of net_'s weights

  at::Tensor onednn_residual(const at::Tensor& noisy) {
    const auto packed = packed_.current(net_);
    auto x = noisy.contiguous().to_mkldnn();
    for (std::size_t i = 0; i < packed->conv_weights.size(); ++i) {
      x = packed->conv(x, i);
      if (i + 1 < packed->conv_weights.size()) x = at::relu(x);
    }
    return x.to_dense();
  }
};

std::vector<ParamSpec> schema() {
  std::vector<ParamSpec> specs{
      {.name = "depth", .type = ParamType::Int, .default_value = "4",
       .doc = "convolution layers (3x3, stride 1), the last predicting the noise", .min = 2, .max = 32},
      {.name = "features", .type = ParamType::Int, .default_value = "16", .doc = "channels of the hidden layers",
       .min = 1, .max = 512},
  };
  for (auto& spec : rguard::denoiser_train_param_specs("4")) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Denoiser, "dncnn", "1",
              "DnCNN-style residual denoiser for small images (x - conv net(x)), trained in front of the frozen backbone",
              DnCnn, schema())
