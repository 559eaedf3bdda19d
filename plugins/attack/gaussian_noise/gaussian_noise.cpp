// gaussian_noise: a random direction of l2 norm eps (then clipped to [0, 1]): the baseline
// every attack should beat.
#include <torch/types.h>

#include "rguard/adversarial.hpp"
#include "rguard/hash.hpp"

namespace {

class GaussianNoiseAttack final : public rguard::Attack {
 public:
  explicit GaussianNoiseAttack(const rguard::Params& p)
      : eps_(p.get_float_list("eps")), seed_(static_cast<std::uint64_t>(p.get_int("seed"))) {}
  std::vector<double> epsilons() const override { return eps_; }
  std::vector<at::Tensor> perturb(rguard::Backbone&, const rguard::AttackTask& task) override {
    const std::uint64_t seed = rguard::Hasher(task.seed).u64(seed_).digest();
    const auto direction = rguard::normalize_per_example(rguard::query_normal(task.images, task.query_ids, seed, 0));
    std::vector<at::Tensor> out;
    for (double eps : eps_) out.push_back(task.images + rguard::project_l2(eps * direction, task.images, eps));
    return out;
  }

 private:
  std::vector<double> eps_;
  std::uint64_t seed_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Attack, "gaussian_noise", "1.0", "random perturbation of l2 norm eps (baseline)",
              GaussianNoiseAttack,
              (std::vector<rguard::ParamSpec>{
                  {.name = "norm", .type = rguard::ParamType::String, .default_value = "l2",
                   .doc = "the perturbation's norm: l2 over all pixels of a [0,1] image", .choices = "l2"},
                  {.name = "eps", .type = rguard::ParamType::FloatList, .default_value = "[0.05, 0.1, 0.25, 0.5]",
                   .doc = "l2 norms, in [0,1] pixel units (never divided by 255); at most 1000", .min = 0, .max = 1000},
                  {.name = "seed", .type = rguard::ParamType::Int, .default_value = "0",
                   .doc = "attack seed (mixed with the run's)", .min = 0}}))
