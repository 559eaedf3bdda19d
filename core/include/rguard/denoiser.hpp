// Plugin kind "denoiser": D in front of a frozen backbone f, so that f(D(x + delta)) is what
// gets smoothed and certified (denoised smoothing, Salman et al., NeurIPS 2020). Noisy
// images [B, C, H, W] in [0,1] pixel space -> images of the same shape. The core composes
// f o D; a denoiser never sees the backbone. docs/denoised-smoothing.md.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rguard/backbone.hpp"
#include "rguard/data.hpp"
#include "rguard/params.hpp"
#include "rguard/plugin.hpp"

namespace rguard {

// How the core trains a denoiser in front of the frozen backbone (docs/denoised-smoothing.md):
// the loss is mse * ||D(x+d) - x||^2 + stability * ||f(D(x+d)) - f(x)||^2 + certified_margin *
// the certified-margin hinge through f, over `draws` noisy copies of each image.
struct DenoiserTrainConfig {
  std::int64_t epochs = 0;  // 0: use the denoiser as initialised or loaded
  std::int64_t batch = 0;
  double lr = 0;
  double noise_sigma = 0;  // the Gaussian it learns to remove, [0,1] pixel units
  std::int64_t draws = 1;
  double mse = 0, stability = 0, certified_margin = 0;  // objective weights
  double target = 0;        // certified_margin: pair radius over sigma asked for
  std::int64_t hard = 0;    // certified_margin: negatives per anchor
};

// The "train.*" parameters of a trainable denoiser, and their reading (throws rguard::Error
// naming the key for combinations that cannot train).
std::vector<ParamSpec> denoiser_train_param_specs(const char* default_epochs);
DenoiserTrainConfig parse_denoiser_train_config(const Params& params);

class Denoiser : public Plugin {
 public:
  // Builds the network for images of this shape, weights initialised from `seed`.
  virtual void init(const ImageShape& input, std::uint64_t seed) = 0;
  // [B, C, H, W] noisy pixels -> [B, C, H, W] denoised pixels. Records autograd when the
  // caller enables it (training, attacks); the core wraps inference in InferenceMode.
  virtual at::Tensor forward(const at::Tensor& noisy) = 0;
  virtual void set_training(bool training) = 0;
  virtual void to(const c10::Device& device) = 0;
  // Every parameter and buffer by stable name: what the cache stores and restores in place.
  virtual NamedTensors state() = 0;
  virtual std::vector<at::Tensor> trainable_parameters() = 0;
  // Content hash of a file the parameters name (a TorchScript denoiser); "" when none.
  virtual std::string fingerprint() const { return ""; }
  virtual const DenoiserTrainConfig& train_config() const = 0;
};

}  // namespace rguard
