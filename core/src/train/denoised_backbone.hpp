// f o D: a frozen backbone behind a denoiser, seen by the rest of the core as one backbone
// (the sampler, the clean embeddings, attacks and the audit all call forward()). Only the
// denoiser trains; the backbone stays in inference mode and its weights are never handed
// to an optimiser. Internal to rguard_core.
#pragma once

#include <memory>
#include <string>

#include "rguard/backbone.hpp"
#include "rguard/denoiser.hpp"

namespace rguard {

class DenoisedBackbone final : public Backbone {
 public:
  // `who` says where the denoiser is and what it is, to start its errors with
  // ("spec.yaml:16:3: point 'main': denoiser plugin 'torchscript' (file d.pt)").
  DenoisedBackbone(std::shared_ptr<Backbone> base, std::shared_ptr<Denoiser> denoiser, std::string who);

  // Both parts are built and loaded by the model stage; init() here is refused.
  void init(const ImageShape& input, std::uint64_t seed) override;
  // base(denoiser(images)); a denoiser that fails, changes the shape or returns NaN or
  // infinity is refused here, under its own name (the base could hide it: a ReLU maps NaN to 0).
  at::Tensor forward(const at::Tensor& images) override;
  void set_training(bool training) override;              // the denoiser's mode; the base stays in eval
  void to(const c10::Device& device) override;
  NamedTensors state() override;  // "base/<name>" then "denoiser/<name>"
  std::vector<at::Tensor> trainable_parameters() override;  // the denoiser's
  std::int64_t embedding_dim() const override { return base_->embedding_dim(); }
  std::string fingerprint() const override;
  const TrainConfig& train_config() const override { return base_->train_config(); }

  Backbone& base() { return *base_; }
  Denoiser& denoiser() { return *denoiser_; }

 private:
  std::shared_ptr<Backbone> base_;
  std::shared_ptr<Denoiser> denoiser_;
  std::string who_;
};

}  // namespace rguard
