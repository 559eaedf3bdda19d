// What the plugins' oneDNN inference paths share (small_cnn, dncnn): knowing when packed
// weights are stale, and packing a 3x3 convolution for at::mkldnn_convolution. Compiled
// into each plugin that uses it (plugins/CMakeLists.txt), not part of the SDK.
#pragma once

#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace rguard::plugins {

// Each parameter's version counter and address: changes whenever one is updated in place
// (an optimiser step, loading weights) or replaced, so packed copies cannot go stale.
std::vector<std::int64_t> parameter_versions(const std::vector<at::Tensor>& parameters);

// A 3x3, stride 1, padding 1 convolution's weight reordered for at::mkldnn_convolution,
// and a copy of its bias.
std::pair<at::Tensor, at::Tensor> pack_conv3x3(const torch::nn::Conv2dImpl& conv);

}  // namespace rguard::plugins
