#include "script_module.hpp"

#include "parameter_versions.hpp"

#include <ATen/Context.h>
#include <fmt/format.h>

#include <filesystem>

#include "rguard/error.hpp"
#include "rguard/hash.hpp"

namespace rguard::plugins {

namespace {

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

}  // namespace

ScriptModule::ScriptModule(std::string file, const std::string& key, bool optimize)
    : file_(std::move(file)), optimize_(optimize) {
  std::error_code ec;
  if (std::filesystem::is_directory(file_, ec))
    throw Error(fmt::format("{}: is a folder, not a TorchScript model file ({}: name the .pt file itself)", file_, key));
  auto hash = hash_file(file_);
  if (!hash)
    throw Error(fmt::format("{}: TorchScript model not found ({}; save one with torch.jit.save, see "
                            "docs/models-and-data.md)",
                            file_, key));
  fingerprint_ = *hash;
}

void ScriptModule::load() {
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
  optimized_.reset();
  optimization_failed_ = false;
}

c10::IValue ScriptModule::forward(const at::Tensor& x, const std::string& shape_key) {
  try {
    return (use_optimized(x) ? optimized() : module_).forward({x});
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: the model's forward failed on images of shape [{}] ({}; are they what the model "
                            "expects?): {}",
                            file_, fmt::join(x.sizes(), ", "), shape_key, model_error(e)));
  }
}

NamedTensors ScriptModule::state() {
  NamedTensors out;
  for (const auto& item : module_.named_parameters()) out.emplace_back(item.name, item.value);
  for (const auto& item : module_.named_buffers()) out.emplace_back(item.name, item.value);
  return out;
}

std::vector<at::Tensor> ScriptModule::parameters() {
  std::vector<at::Tensor> out;
  for (const auto& p : module_.parameters()) out.push_back(p);
  return out;
}

std::vector<std::int64_t> ScriptModule::parameter_versions() const {
  std::vector<at::Tensor> parameters;
  for (const auto& p : module_.parameters()) parameters.push_back(p);
  return rguard::plugins::parameter_versions(parameters);
}

bool ScriptModule::use_optimized(const at::Tensor& x) const {
  return optimize_ && !optimization_failed_ && !at::GradMode::is_enabled() && x.device().is_cpu() &&
         !module_.is_training();
}

torch::jit::script::Module& ScriptModule::optimized() {
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

}  // namespace rguard::plugins
