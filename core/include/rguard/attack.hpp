// Plugin kind "attack": adversarial perturbations of queries in [0,1] pixel space, l2.
// The interface is fixed here; the attack plugins themselves arrive with the soundness
// audit (empirical robustness beside certified robustness).
#pragma once

#include <vector>

#include "rguard/data.hpp"
#include "rguard/plugin.hpp"
#include "rguard/retrieval.hpp"

namespace rguard {

class Backbone;
class Noise;

struct AttackTask {
  at::Tensor images;          // [B, C, H, W] clean queries
  at::Tensor labels;          // [B]
  at::Tensor gallery_index;   // [B] own gallery row or -1
  GalleryView gallery;
  const Noise* noise = nullptr;  // for attacks on the smoothed model (EOT); may be null
  std::uint64_t seed = 0;
};

class Attack : public Plugin {
 public:
  virtual std::vector<double> epsilons() const = 0;  // l2 budgets, pixel units
  // Adversarial images within l2 distance eps of task.images, clipped to [0, 1].
  virtual at::Tensor perturb(Backbone& model, const AttackTask& task, double eps) = 0;
};

}  // namespace rguard
