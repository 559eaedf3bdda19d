// Building blocks of the l2 attacks (plugins/attack/*): the retrieval objective, random
// starts, projection and normalised steps, all per example and reproducible per query.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "rguard/attack.hpp"
#include "rguard/data.hpp"

namespace rguard {

// Per example: distance to the nearest positive minus distance to the nearest negative
// (the query's own gallery row excluded). Positive means the 1-NN is of a wrong class;
// attacks that flip the 1-NN maximise it. `embedding` [B, k]; differentiable.
at::Tensor retrieval_margin(const at::Tensor& embedding, const AttackTask& task);

// Makes x + delta a valid adversarial image: pixels clamped to [0, 1], then delta scaled
// into the eps ball. Scaling toward x keeps the pixels in [0, 1], so both hold after.
at::Tensor project_l2(const at::Tensor& delta, const at::Tensor& x, double eps);

// Per-example unit l2 direction (zero stays zero).
at::Tensor normalize_per_example(const at::Tensor& g);

// Per-query standard normal tensor shaped like x[0], from Philox streams keyed by
// (seed, stream, query id): the same whatever the batch.
at::Tensor query_normal(const at::Tensor& like, const at::Tensor& query_ids, std::uint64_t seed, std::uint32_t stream,
                        std::uint32_t sample = 0);

// A point drawn uniformly from the eps ball around each x, projected into [0, 1].
at::Tensor random_ball_start(const at::Tensor& x, const at::Tensor& query_ids, double eps, std::uint64_t seed,
                             std::uint32_t stream);

struct PgdSettings {
  std::vector<double> epsilons;
  std::int64_t steps = 20;
  double step_fraction = 0.25;  // step length as a fraction of eps
  std::int64_t restarts = 1;
  bool random_start = true;
  std::uint64_t seed = 0;
};

// Projected gradient ascent on `objective` (per-example values, differentiable in x'):
// normalised gradient steps, projection after each, restarts keeping each example's best.
// One adversarial batch per epsilon.
std::vector<at::Tensor> pgd_l2(const at::Tensor& x, const at::Tensor& query_ids, const PgdSettings& settings,
                               const std::function<at::Tensor(const at::Tensor&)>& objective);

// Params every PGD-style attack declares: eps, steps, step_fraction, restarts, random_start, seed.
std::vector<ParamSpec> pgd_param_specs(const char* default_steps);
PgdSettings parse_pgd_settings(const Params& params, std::uint64_t run_seed);

}  // namespace rguard
