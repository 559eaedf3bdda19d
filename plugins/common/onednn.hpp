// What the plugins' oneDNN inference paths share (small_cnn, dncnn): when oneDNN applies,
// and oneDNN copies of a Sequential's 3x3 convolutions and linear layers that are rebuilt
// whenever a parameter changed. Compiled into each plugin that uses it
// (plugins/CMakeLists.txt), not part of the SDK.
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace rguard::plugins {

// The oneDNN path serves inference only: no autograd, CPU, float32, eval mode.
bool onednn_applies(const at::Tensor& input, const torch::nn::Module& net);

// The weights of a Sequential's layers in the order they appear: each 3x3, stride 1,
// padding 1 convolution reordered for at::mkldnn_convolution, each linear layer copied.
struct PackedLayers {
  std::vector<at::Tensor> conv_weights, conv_biases;
  at::Tensor linear_weight, linear_bias;  // the last linear layer; undefined without one

  // conv_weights[i] applied to x (oneDNN layout in and out).
  at::Tensor conv(const at::Tensor& x, std::size_t i) const;
};

class PackedSequential {
 public:
  // The packed weights of `net` as its parameters are now; thread-safe. In-place updates
  // (an optimiser step, loading weights) bump a tensor's version counter and replacing one
  // changes its address, so a stale copy is never returned; the shared_ptr keeps a copy
  // alive for a forward pass that is using it while another thread repacks.
  std::shared_ptr<const PackedLayers> current(const torch::nn::Sequential& net);

 private:
  std::mutex mutex_;
  std::vector<std::int64_t> versions_;
  std::shared_ptr<const PackedLayers> packed_;
};

}  // namespace rguard::plugins
