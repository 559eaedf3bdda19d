// Plugin kind "attack": adversarial perturbations of queries, l2 in [0,1] pixel space
// (epsilon is an l2 norm over all pixels of an image with values in [0, 1]; never /255).
#pragma once

#include <vector>

#include "rguard/data.hpp"
#include "rguard/plugin.hpp"

namespace rguard {

class Backbone;
class Noise;

// A batch of queries to attack, with what an embedding-native attack needs to know.
struct AttackTask {
  at::Tensor images;          // [B, C, H, W] clean queries, on the model's device
  at::Tensor labels;          // [B] int64
  at::Tensor gallery_index;   // [B] the query's own gallery row (excluded) or -1
  at::Tensor query_ids;       // [B] int64: per-query random streams, whatever the batching
  at::Tensor gallery;         // [G, k] clean gallery embeddings, on the model's device
  at::Tensor gallery_labels;  // [G] int64, on the model's device
  const Noise* noise = nullptr;  // the smoothing noise (attacks on the smoothed model)
  std::uint64_t seed = 0;        // the run's seed for this attack
};

class Attack : public Plugin {
 public:
  virtual std::vector<double> epsilons() const = 0;  // l2 budgets, [0,1] pixel units
  // One adversarial batch per epsilon, in the order of epsilons(): x' with
  // ||x' - x||_2 <= eps per image and pixels in [0, 1].
  virtual std::vector<at::Tensor> perturb(Backbone& model, const AttackTask& task) = 0;
};

}  // namespace rguard
