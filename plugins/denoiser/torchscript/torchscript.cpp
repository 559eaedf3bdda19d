// torchscript: a user's denoiser, traced or scripted in PyTorch and saved with torch.jit.save:
// noisy images [B, C, H, W] in [0,1] pixel space in, denoised images of the same shape out.
// Used as it is (train.epochs: 0, the default) or fine-tuned in front of the frozen backbone.
// Loading, its errors and the frozen inference copy: plugins/common/script_module.hpp.
#include <fmt/format.h>
#include <torch/torch.h>

#include "rguard/denoiser.hpp"
#include "rguard/error.hpp"
#include "script_module.hpp"

namespace {

using rguard::Error;

class TorchScriptDenoiser final : public rguard::Denoiser {
 public:
  explicit TorchScriptDenoiser(const rguard::Params& p)
      : module_(p.get_string("file"), "denoiser.file", p.get_bool("optimize")),
        config_(rguard::parse_denoiser_train_config(p)) {}

  std::string fingerprint() const override { return module_.fingerprint(); }
  void init(const rguard::ImageShape&, std::uint64_t) override { module_.load(); }

  at::Tensor forward(const at::Tensor& noisy) override {
    const c10::IValue value = module_.forward(noisy, "the dataset's image shape");
    const std::string& file = module_.file();
    if (!value.isTensor())
      throw Error(fmt::format("{}: the denoiser returned a value of type {}, expected one tensor of denoised images [batch, channels, "
                              "height, width]",
                              file, value.tagKind()));
    auto out = value.toTensor();
    if (!at::isFloatingType(out.scalar_type()))
      throw Error(fmt::format("{}: the denoiser returned {} images; expected floating point (float32) pixels", file,
                              c10::toString(out.scalar_type())));
    if (!out.sizes().equals(noisy.sizes()))
      throw Error(fmt::format("{}: the denoiser returned a tensor of shape [{}] for images of shape [{}]; a denoiser "
                              "must return its input's shape (the backbone behind it takes the dataset's images)",
                              file, fmt::join(out.sizes(), ", "), fmt::join(noisy.sizes(), ", ")));
    return out.to(at::kFloat);
  }

  void set_training(bool training) override { module_.train(training); }
  void to(const c10::Device& device) override { module_.to(device); }
  rguard::NamedTensors state() override { return module_.state(); }
  std::vector<at::Tensor> trainable_parameters() override { return module_.parameters(); }
  const rguard::DenoiserTrainConfig& train_config() const override { return config_; }

 private:
  rguard::plugins::ScriptModule module_;
  rguard::DenoiserTrainConfig config_;
};

std::vector<rguard::ParamSpec> schema() {
  std::vector<rguard::ParamSpec> specs{
      {.name = "file", .type = rguard::ParamType::Path, .default_value = nullptr,
       .doc = "TorchScript file (torch.jit.save of a traced or scripted denoiser: images -> images of the same shape)"},
      {.name = "optimize", .type = rguard::ParamType::Bool, .default_value = "true",
       .doc = "run inference on a frozen copy optimised for inference (torch.jit.freeze + optimize_for_inference)"},
  };
  for (auto& spec : rguard::denoiser_train_param_specs("0")) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Denoiser, "torchscript", "1",
              "a user's TorchScript denoiser (images -> images of the same shape), used as is or fine-tuned",
              TorchScriptDenoiser, schema())
