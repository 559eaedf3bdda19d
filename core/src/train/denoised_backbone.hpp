// f o D: a frozen backbone behind a denoiser, seen by the rest of the core as one backbone
// (the sampler, the clean embeddings, attacks and the audit all call forward()). Only the
// denoiser trains; the backbone stays in inference mode and its weights are never handed
// to an optimiser. Internal to rguard_core.
#pragma once

#include <memory>

#include "rguard/backbone.hpp"
#include "rguard/denoiser.hpp"

namespace rguard {

class DenoisedBackbone final : public Backbone {
 public:
  DenoisedBackbone(std::shared_ptr<Backbone> base, std::shared_ptr<Denoiser> denoiser);

  // Both parts are built and loaded by the model stage; init() here is refused.
  void init(const ImageShape& input, std::uint64_t seed) override;
  at::Tensor forward(const at::Tensor& images) override;  // base(denoiser(images))
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
};

}  // namespace rguard
