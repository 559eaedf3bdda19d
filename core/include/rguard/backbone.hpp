// Plugin kind "backbone": the base encoder f, images in [0,1] -> unit sphere in R^k.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <utility>
#include <vector>

#include "rguard/data.hpp"
#include "rguard/plugin.hpp"
#include "rguard/training.hpp"

namespace rguard {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

class Backbone : public Plugin {
 public:
  // Builds the network for inputs of this shape with weights initialised from `seed`.
  virtual void init(const ImageShape& input, std::uint64_t seed) = 0;
  // [B, C, H, W] pixels in [0, 1] -> [B, k] with unit l2 norm. Records autograd when
  // enabled by the caller (training, attacks); the core wraps inference in NoGradGuard.
  virtual at::Tensor forward(const at::Tensor& images) = 0;
  virtual void set_training(bool training) = 0;
  virtual void to(const c10::Device& device) = 0;
  // Every parameter and buffer, by stable name: what the cache stores and restores in place.
  virtual NamedTensors state() = 0;
  virtual std::vector<at::Tensor> trainable_parameters() = 0;
  virtual std::int64_t embedding_dim() const = 0;
  // Content hash of anything the parameters only name (a weights or model file), so the
  // cache key changes when the file does; "" when there is none.
  virtual std::string fingerprint() const { return ""; }
  // How the pipeline trains it; epochs == 0 means "use the weights as initialised/loaded".
  virtual const TrainConfig& train_config() const = 0;
};

}  // namespace rguard
