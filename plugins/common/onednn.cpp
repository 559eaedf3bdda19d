#include "onednn.hpp"

#include <ATen/ATen.h>

namespace rguard::plugins {

std::vector<std::int64_t> parameter_versions(const std::vector<at::Tensor>& parameters) {
  std::vector<std::int64_t> out;
  for (const auto& p : parameters) {
    out.push_back(static_cast<std::int64_t>(p._version()));
    out.push_back(reinterpret_cast<std::intptr_t>(p.data_ptr()));
  }
  return out;
}

std::pair<at::Tensor, at::Tensor> pack_conv3x3(const torch::nn::Conv2dImpl& conv) {
  return {at::mkldnn_reorder_conv2d_weight(conv.weight.detach().to_mkldnn(), {1, 1}, {1, 1}, {1, 1}, 1),
          conv.bias.detach().clone()};
}

}  // namespace rguard::plugins
