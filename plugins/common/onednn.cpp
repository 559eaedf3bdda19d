#include "onednn.hpp"

#include "parameter_versions.hpp"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace rguard::plugins {

namespace {
PackedLayers pack(const torch::nn::Sequential& net) {
  PackedLayers packed;
  for (const auto& module : net->children()) {
    if (auto conv = module->as<torch::nn::Conv2d>()) {
      packed.conv_weights.push_back(
          at::mkldnn_reorder_conv2d_weight(conv->weight.detach().to_mkldnn(), {1, 1}, {1, 1}, {1, 1}, 1));
      packed.conv_biases.push_back(conv->bias.detach().clone());
    } else if (auto linear = module->as<torch::nn::Linear>()) {
      packed.linear_weight = linear->weight.detach().clone();
      packed.linear_bias = linear->bias.detach().clone();
    }
  }
  return packed;
}
}  // namespace

bool onednn_applies(const at::Tensor& input, const torch::nn::Module& net) {
  return !at::GradMode::is_enabled() && input.device().is_cpu() && input.scalar_type() == at::kFloat &&
         at::hasMKLDNN() && !net.is_training();
}

at::Tensor PackedLayers::conv(const at::Tensor& x, std::size_t i) const {
  return at::mkldnn_convolution(x, conv_weights[i], conv_biases[i], {1, 1}, {1, 1}, {1, 1}, 1);
}

std::shared_ptr<const PackedLayers> PackedSequential::current(const torch::nn::Sequential& net) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto versions = parameter_versions(net->parameters());
  if (!packed_ || versions != versions_) {
    packed_ = std::make_shared<const PackedLayers>(pack(net));
    versions_ = std::move(versions);
  }
  return packed_;
}

}  // namespace rguard::plugins
