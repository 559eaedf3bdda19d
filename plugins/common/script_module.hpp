// A user's TorchScript file as plugins run it (the torchscript backbone and denoiser):
// loaded with an error that says how to save one, run as saved while autograd records or it
// trains, otherwise through a frozen copy optimised for inference (torch::jit::freeze +
// optimize_for_inference: constants folded, conv+BN fused, oneDNN layouts), rebuilt when a
// parameter changes. Every failure is an rguard::Error naming the file. Compiled into each
// plugin that uses it (plugins/CMakeLists.txt), not part of the SDK.
#pragma once

#include <torch/script.h>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "rguard/backbone.hpp"

namespace rguard::plugins {

class ScriptModule {
 public:
  // `key`: the spec key that names the file ("backbone.file"), quoted when it is missing.
  ScriptModule(std::string file, const std::string& key, bool optimize);

  const std::string& file() const { return file_; }
  const std::string& fingerprint() const { return fingerprint_; }  // content hash of the file
  void load();  // torch::jit::load, in eval mode
  // forward({x}); `shape_key` names the spec key that declares the input shape.
  c10::IValue forward(const at::Tensor& x, const std::string& shape_key);

  void train(bool training) { module_.train(training); }
  void to(const c10::Device& device) { module_.to(device); }
  NamedTensors state();
  std::vector<at::Tensor> parameters();

 private:
  std::string file_, fingerprint_;
  torch::jit::script::Module module_;
  bool optimize_;
  std::optional<torch::jit::script::Module> optimized_;
  std::vector<std::int64_t> optimized_versions_;
  bool optimization_failed_ = false;
  std::mutex optimize_mutex_;

  std::vector<std::int64_t> parameter_versions() const;
  bool use_optimized(const at::Tensor& x) const;
  torch::jit::script::Module& optimized();
};

}  // namespace rguard::plugins
