// How the plugins' inference copies (oneDNN packed weights, frozen TorchScript) know they
// are stale: each parameter's version counter, bumped by every in-place update (an
// optimiser step, loading weights), and its address, which changes when one is replaced.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace rguard::plugins {

inline std::vector<std::int64_t> parameter_versions(const std::vector<at::Tensor>& parameters) {
  std::vector<std::int64_t> out;
  for (const auto& p : parameters) {
    out.push_back(static_cast<std::int64_t>(p._version()));
    out.push_back(reinterpret_cast<std::intptr_t>(p.data_ptr()));
  }
  return out;
}

}  // namespace rguard::plugins
