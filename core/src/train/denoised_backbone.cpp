#include "train/denoised_backbone.hpp"

#include <ATen/core/Tensor.h>
#include <ATen/ops/isfinite.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "rguard/error.hpp"

namespace rguard {

DenoisedBackbone::DenoisedBackbone(std::shared_ptr<Backbone> base, std::shared_ptr<Denoiser> denoiser, std::string who)
    : base_(std::move(base)), denoiser_(std::move(denoiser)), who_(std::move(who)) {}

void DenoisedBackbone::init(const ImageShape&, std::uint64_t) {
  throw Error("internal: a denoised backbone is built from its parts by the model stage, not initialised");
}

at::Tensor DenoisedBackbone::forward(const at::Tensor& images) {
  at::Tensor denoised;
  try {
    denoised = denoiser_->forward(images);
  } catch (...) {
    throw AttributedError(fmt::format("{} failed on images of shape [{}]: {}", who_, fmt::join(images.sizes(), ", "),
                                      current_exception_message()));
  }
  if (!denoised.defined() || !denoised.sizes().equals(images.sizes()))
    throw AttributedError(fmt::format("{}: returned {} for images of shape [{}]; a denoiser must return its input's shape", who_,
                            denoised.defined() ? fmt::format("shape [{}]", fmt::join(denoised.sizes(), ", ")) : "nothing",
                            fmt::join(images.sizes(), ", ")));
  if (!at::isfinite(denoised).all().item<bool>())
    throw AttributedError(fmt::format("{}: returned NaN or infinite pixels for images of shape [{}] (noisy or clean); the "
                            "certificates of such a model would mean nothing: check the denoiser's forward on these "
                            "inputs (a TorchScript file: load it in Python and run it on a batch of this shape)",
                            who_, fmt::join(images.sizes(), ", ")));
  return base_->forward(denoised);
}

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
