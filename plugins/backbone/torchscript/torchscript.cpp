// torchscript: a user's model, traced or scripted in PyTorch and saved with torch.jit.save.
// The YAML declares what the file cannot: the input shape it expects, the input
// normalisation it does not do itself, and whether its output is already l2-normalised.
// Noise is added before that normalisation, in [0,1] pixel space.
// Inference (no autograd, CPU) runs a frozen copy optimised for inference
// (torch::jit::freeze + optimize_for_inference: constants folded, conv+BN fused, oneDNN
// layouts), rebuilt when a parameter changes; training and attacks use the module as saved.
#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>

#include "rguard/backbone.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/training.hpp"

namespace {

using rguard::Error;

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// The error a TorchScript model raised, without the interpreter's traceback: the last
// non-empty line ("RuntimeError: mat1 and mat2 shapes cannot be multiplied ...").
std::string model_error(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = torch_error ? torch_error->what_without_backtrace() : e.what();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto last = text.rfind('\n');
  return last == std::string::npos ? text : text.substr(last + 1);
}

class TorchScriptBackbone final : public rguard::Backbone {
 public:
  explicit TorchScriptBackbone(const rguard::Params& p)
      : file_(p.get_string("file")),
        input_(p.get_int_list("input_shape")),
        mean_(p.get_float_list("input_mean")),
        std_(p.get_float_list("input_std")),
        output_normalized_(p.get_bool("output_normalized")),
        config_(rguard::parse_train_config(p)),
        optimize_(p.get_bool("optimize")) {
    if (input_.size() != 3)
      throw Error(fmt::format("backbone.input_shape: expected [channels, height, width], got {} values", input_.size()));
    if (mean_.size() != std_.size())
      throw Error("backbone.input_mean and backbone.input_std must have the same length (one value, or one per channel)");
    auto hash = rguard::hash_file(file_);
    if (!hash)
      throw Error(fmt::format("{}: TorchScript model not found (backbone.file; save one with torch.jit.save, see "
                              "docs/models-and-data.md)",
                              file_));
    fingerprint_ = *hash;
  }

  std::string fingerprint() const override { return fingerprint_; }

  void init(const rguard::ImageShape& input, std::uint64_t) override {
    if (input.channels != input_[0] || input.height != input_[1] || input.width != input_[2])
      throw Error(fmt::format("backbone.input_shape is [{}, {}, {}] but the dataset's images are {}x{}x{}", input_[0],
                              input_[1], input_[2], input.channels, input.height, input.width));
    const char* hint =
        "a file from torch.save (a state_dict or a pickled nn.Module) is not TorchScript: save the model with "
        "torch.jit.save(torch.jit.script(model), path) or torch.jit.trace (docs/models-and-data.md)";
    try {
      module_ = torch::jit::load(file_);
    } catch (const c10::Error& e) {
      throw Error(fmt::format("{}: not a TorchScript model torch.jit.load can read ({}); {}", file_,
                              first_line(e.what_without_backtrace()), hint));
    } catch (const std::exception& e) {
      throw Error(fmt::format("{}: not a TorchScript model torch.jit.load can read ({}); {}", file_, first_line(e.what()),
                              hint));
    }
    module_.eval();
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
    c10::IValue value;
    try {
      value = (use_optimized(images) ? optimized() : module_).forward({x});
    } catch (const std::exception& e) {
      throw Error(fmt::format("{}: the model's forward failed on images of shape [{}] (backbone.input_shape; are they what "
                              "the model expects?): {}",
                              file_, fmt::join(images.sizes(), ", "), model_error(e)));
    }
    if (!value.isTensor())
      throw Error(fmt::format("{}: the model returned a {}, expected one tensor [batch, k]", file_, value.tagKind()));
    auto out = value.toTensor();
    if (!at::isFloatingType(out.scalar_type()))
      throw Error(fmt::format("{}: the model returned {} embeddings; expected floating point (float32)", file_,
                              c10::toString(out.scalar_type())));
    out = out.to(at::kFloat);
    if (out.dim() == 2 && out.size(1) == 0)
      throw Error(fmt::format("{}: the model returned [{}, 0]: an embedding needs at least one dimension", file_,
                              images.size(0)));
    if (out.dim() != 2 || out.size(0) != images.size(0))
      throw Error(fmt::format("{}: the model returned a tensor of shape [{}] for {} images; expected [batch, k] = [{}, k] "
                              "(flatten its output, e.g. x.flatten(1))",
                              file_, fmt::join(out.sizes(), ", "), images.size(0), images.size(0)));
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
  rguard::NamedTensors state() override {
    rguard::NamedTensors out;
    for (const auto& item : module_.named_parameters()) out.emplace_back(item.name, item.value);
    for (const auto& item : module_.named_buffers()) out.emplace_back(item.name, item.value);
    return out;
  }
  std::vector<at::Tensor> trainable_parameters() override {
    std::vector<at::Tensor> out;
    for (const auto& p : module_.parameters()) out.push_back(p);
    return out;
  }
  std::int64_t embedding_dim() const override { return dim_; }
  const rguard::TrainConfig& train_config() const override { return config_; }

 private:
  std::string file_, fingerprint_;
  std::vector<std::int64_t> input_;
  std::vector<double> mean_, std_;
  bool output_normalized_;
  rguard::TrainConfig config_;
  torch::jit::script::Module module_;
  std::int64_t dim_ = 0;

  bool optimize_;
  std::optional<torch::jit::script::Module> optimized_;
  std::vector<std::int64_t> optimized_versions_;
  bool optimization_failed_ = false;
  std::mutex optimize_mutex_;

  std::vector<std::int64_t> parameter_versions() const {
    std::vector<std::int64_t> out;
    for (const auto& p : module_.parameters()) {
      out.push_back(static_cast<std::int64_t>(p._version()));
      out.push_back(reinterpret_cast<std::intptr_t>(p.data_ptr()));
    }
    return out;
  }

  bool use_optimized(const at::Tensor& images) const {
    return optimize_ && !optimization_failed_ && !at::GradMode::is_enabled() && images.device().is_cpu() &&
           !module_.is_training();
  }

  torch::jit::script::Module& optimized() {
    std::lock_guard<std::mutex> lock(optimize_mutex_);
    auto versions = parameter_versions();
    if (optimized_ && versions == optimized_versions_) return *optimized_;
    try {
      auto frozen = torch::jit::freeze(module_);
      optimized_ = torch::jit::optimize_for_inference(frozen);
      optimized_versions_ = std::move(versions);
      return *optimized_;
    } catch (const c10::Error&) {
      optimization_failed_ = true;  // some models cannot be frozen: run them as saved
      return module_;
    }
  }
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
