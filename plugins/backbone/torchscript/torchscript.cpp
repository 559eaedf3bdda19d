// torchscript: a user's model, traced or scripted in PyTorch and saved with torch.jit.save.
// The YAML declares what the file cannot: the input shape it expects, the input
// normalisation it does not do itself, and whether its output is already l2-normalised.
// Noise is added before that normalisation, in [0,1] pixel space. Loading, its errors and
// the frozen inference copy: plugins/common/script_module.hpp.
#include <fmt/format.h>
#include <torch/torch.h>

#include <limits>

#include "rguard/backbone.hpp"
#include "rguard/error.hpp"
#include "rguard/training.hpp"
#include "script_module.hpp"

namespace {

using rguard::Error;

class TorchScriptBackbone final : public rguard::Backbone {
 public:
  explicit TorchScriptBackbone(const rguard::Params& p)
      : module_(p.get_string("file"), "backbone.file", p.get_bool("optimize")),
        input_(p.get_int_list("input_shape")),
        mean_(p.get_float_list("input_mean")),
        std_(p.get_float_list("input_std")),
        output_normalized_(p.get_bool("output_normalized")),
        config_(rguard::parse_train_config(p)) {
    if (input_.size() != 3)
      throw Error(fmt::format("backbone.input_shape: expected [channels, height, width], got {} values", input_.size()));
    if (mean_.size() != std_.size())
      throw Error("backbone.input_mean and backbone.input_std must have the same length (one value, or one per channel)");
  }

  std::string fingerprint() const override { return module_.fingerprint(); }

  void init(const rguard::ImageShape& input, std::uint64_t) override {
    if (input.channels != input_[0] || input.height != input_[1] || input.width != input_[2])
      throw Error(fmt::format("backbone.input_shape is [{}, {}, {}] but the dataset's images are {}x{}x{}", input_[0],
                              input_[1], input_[2], input.channels, input.height, input.width));
    module_.load();
    torch::NoGradGuard no_grad;
    // One probe image: the model must accept the declared input shape and give [1, k].
    dim_ = forward(torch::zeros({1, input.channels, input.height, input.width})).size(1);
  }

  at::Tensor forward(const at::Tensor& images) override {
    at::Tensor x = images;
    if (!mean_.empty()) {
      auto shape = std::vector<std::int64_t>{1, static_cast<std::int64_t>(mean_.size()), 1, 1};
      x = (x - torch::tensor(mean_, x.options()).view(shape)) / torch::tensor(std_, x.options()).view(shape);
    }
    const c10::IValue value = module_.forward(x, "backbone.input_shape");
    const std::string& file = module_.file();
    if (!value.isTensor())
      throw Error(fmt::format("{}: the model returned a value of type {}, expected one tensor [batch, k]", file, value.tagKind()));
    auto out = value.toTensor();
    if (!at::isFloatingType(out.scalar_type()))
      throw Error(fmt::format("{}: the model returned {} embeddings; expected floating point (float32)", file,
                              c10::toString(out.scalar_type())));
    out = out.to(at::kFloat);
    if (out.dim() == 2 && out.size(1) == 0)
      throw Error(fmt::format("{}: the model returned [{}, 0]: an embedding needs at least one dimension", file,
                              images.size(0)));
    if (out.dim() != 2 || out.size(0) != images.size(0))
      throw Error(fmt::format("{}: the model returned a tensor of shape [{}] for {} images; expected [batch, k] = [{}, k] "
                              "(flatten its output, e.g. x.flatten(1))",
                              file, fmt::join(out.sizes(), ", "), images.size(0), images.size(0)));
    return output_normalized_ ? out : unit_rows(out);
  }

  // out / ||out|| per row, as torch.nn.functional.normalize, also where the norm overflows
  // float (outputs of 1e20 and more): those rows are first scaled by their largest entry.
  static at::Tensor unit_rows(at::Tensor out) {
    auto norm = out.norm(2, 1, true);
    if (norm.isinf().any().item<bool>()) {
      out = out / out.abs().amax(1, true).clamp_min(std::numeric_limits<float>::min());
      norm = out.norm(2, 1, true);
    }
    return out / norm.clamp_min(1e-12);
  }

  void set_training(bool training) override { module_.train(training); }
  void to(const c10::Device& device) override { module_.to(device); }
  rguard::NamedTensors state() override { return module_.state(); }
  std::vector<at::Tensor> trainable_parameters() override { return module_.parameters(); }
  std::int64_t embedding_dim() const override { return dim_; }
  const rguard::TrainConfig& train_config() const override { return config_; }

 private:
  rguard::plugins::ScriptModule module_;
  std::vector<std::int64_t> input_;
  std::vector<double> mean_, std_;
  bool output_normalized_;
  rguard::TrainConfig config_;
  std::int64_t dim_ = 0;
};

std::vector<rguard::ParamSpec> schema() {
  std::vector<rguard::ParamSpec> specs{
      {.name = "file", .type = rguard::ParamType::Path, .default_value = nullptr,
       .doc = "TorchScript file (torch.jit.save of a traced or scripted model)"},
      {.name = "input_shape", .type = rguard::ParamType::IntList, .default_value = nullptr,
       .doc = "[channels, height, width] the model expects", .min = 1},
      {.name = "input_mean", .type = rguard::ParamType::FloatList, .default_value = "[]",
       .doc = "per-channel mean subtracted before the model ([] = the model normalises itself)"},
      {.name = "input_std", .type = rguard::ParamType::FloatList, .default_value = "[]",
       .doc = "per-channel std divided before the model", .min = 0, .min_exclusive = true},
      {.name = "output_normalized", .type = rguard::ParamType::Bool, .default_value = "false",
       .doc = "the model's output already has unit l2 norm (else rguard normalises it)"},
      {.name = "optimize", .type = rguard::ParamType::Bool, .default_value = "true",
       .doc = "run inference on a frozen copy optimised for inference (torch.jit.freeze + optimize_for_inference)"},
  };
  for (auto& spec : rguard::train_param_specs("0")) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Backbone, "torchscript", "1.3",
              "a user's TorchScript embedding model; input shape and normalisation declared in the YAML",
              TorchScriptBackbone, schema())
