#include "train/denoised_backbone.hpp"

#include <ATen/core/Tensor.h>

#include <utility>

#include "rguard/error.hpp"

namespace rguard {

DenoisedBackbone::DenoisedBackbone(std::shared_ptr<Backbone> base, std::shared_ptr<Denoiser> denoiser)
    : base_(std::move(base)), denoiser_(std::move(denoiser)) {}

void DenoisedBackbone::init(const ImageShape&, std::uint64_t) {
  throw Error("internal: a denoised backbone is built from its parts by the model stage, not initialised");
}

at::Tensor DenoisedBackbone::forward(const at::Tensor& images) { return base_->forward(denoiser_->forward(images)); }

void DenoisedBackbone::set_training(bool training) {
  base_->set_training(false);
  denoiser_->set_training(training);
}

void DenoisedBackbone::to(const c10::Device& device) {
  base_->to(device);
  denoiser_->to(device);
}

NamedTensors DenoisedBackbone::state() {
  NamedTensors out;
  for (auto& [name, tensor] : base_->state()) out.emplace_back("base/" + name, tensor);
  for (auto& [name, tensor] : denoiser_->state()) out.emplace_back("denoiser/" + name, tensor);
  return out;
}

std::vector<at::Tensor> DenoisedBackbone::trainable_parameters() { return denoiser_->trainable_parameters(); }

std::string DenoisedBackbone::fingerprint() const {
  const std::string base = base_->fingerprint(), denoiser = denoiser_->fingerprint();
  return base.empty() && denoiser.empty() ? "" : base + "+" + denoiser;
}

}  // namespace rguard
