// unet: a small U-Net denoiser (Ronneberger, Fischer, Brox, MICCAI 2015) for larger images
// such as 224x224: two 2x2 poolings with two conv3x3 + ReLU at each scale, nearest
// upsampling with skip connections back up, and a conv3x3 predicting the noise,
// D(x) = x - net(x). Height and width must be multiples of 4. The last layer starts at zero,
// so an untrained U-Net is the identity.
#include <fmt/format.h>
#include <torch/torch.h>

#include "rguard/denoiser.hpp"
#include "rguard/error.hpp"

namespace {

using rguard::ParamSpec;
using rguard::ParamType;

torch::nn::Sequential double_conv(std::int64_t in, std::int64_t out) {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)), torch::nn::ReLU(),
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1)), torch::nn::ReLU());
}

struct UNetImpl : torch::nn::Module {
  UNetImpl(std::int64_t channels, std::int64_t f)
      : down1(register_module("down1", double_conv(channels, f))),
        down2(register_module("down2", double_conv(f, 2 * f))),
        bottom(register_module("bottom", double_conv(2 * f, 4 * f))),
        reduce2(register_module("reduce2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4 * f, 2 * f, 3).padding(1)))),
        up2(register_module("up2", double_conv(4 * f, 2 * f))),
        reduce1(register_module("reduce1", torch::nn::Conv2d(torch::nn::Conv2dOptions(2 * f, f, 3).padding(1)))),
        up1(register_module("up1", double_conv(2 * f, f))),
        head(register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(f, channels, 3).padding(1)))) {
    torch::NoGradGuard no_grad;
    head->weight.zero_();
    head->bias.zero_();
  }

  // The predicted noise.
  at::Tensor forward(const at::Tensor& x) {
    namespace F = torch::nn::functional;
    const auto up = F::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest);
    const auto s1 = down1->forward(x);
    const auto s2 = down2->forward(F::max_pool2d(s1, F::MaxPool2dFuncOptions(2)));
    const auto b = bottom->forward(F::max_pool2d(s2, F::MaxPool2dFuncOptions(2)));
    const auto u2 = up2->forward(torch::cat({torch::relu(reduce2->forward(F::interpolate(b, up))), s2}, 1));
    const auto u1 = up1->forward(torch::cat({torch::relu(reduce1->forward(F::interpolate(u2, up))), s1}, 1));
    return head->forward(u1);
  }

  torch::nn::Sequential down1, down2, bottom;
  torch::nn::Conv2d reduce2;
  torch::nn::Sequential up2;
  torch::nn::Conv2d reduce1;
  torch::nn::Sequential up1;
  torch::nn::Conv2d head;
};
TORCH_MODULE(UNet);

class UNetDenoiser final : public rguard::Denoiser {
 public:
  explicit UNetDenoiser(const rguard::Params& p)
      : features_(p.get_int("features")), config_(rguard::parse_denoiser_train_config(p)) {}

  void init(const rguard::ImageShape& input, std::uint64_t seed) override {
    if (input.height % 4 != 0 || input.width % 4 != 0)
      throw rguard::Error(fmt::format("denoiser unet: images of {}x{} pixels; its two 2x2 poolings need a height and "
                                      "width that are multiples of 4 (resize the images, or use dncnn)",
                                      input.height, input.width));
    torch::manual_seed(seed);
    net_ = UNet(input.channels, features_);
    net_->eval();
  }

  at::Tensor forward(const at::Tensor& noisy) override {
    if (noisy.dim() != 4)
      throw rguard::Error(fmt::format("denoiser unet: expected images [batch, channels, height, width], got {} dimensions",
                                      noisy.dim()));
    return noisy - net_->forward(noisy);
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
  std::int64_t features_;
  rguard::DenoiserTrainConfig config_;
  UNet net_{nullptr};
};

std::vector<ParamSpec> schema() {
  std::vector<ParamSpec> specs{
      {.name = "features", .type = ParamType::Int, .default_value = "16",
       .doc = "channels at full resolution (2x and 4x that at the two coarser scales)", .min = 1, .max = 256},
  };
  for (auto& spec : rguard::denoiser_train_param_specs("4")) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Denoiser, "unet", "1",
              "small U-Net denoiser for larger images (224x224; sides multiples of 4), trained in front of the frozen "
              "backbone",
              UNetDenoiser, schema())
