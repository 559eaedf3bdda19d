#include "rguard/adversarial.hpp"

#include <torch/torch.h>

#include <cmath>

#include "rguard/hash.hpp"
#include "rguard/philox.hpp"

namespace rguard {

at::Tensor retrieval_margin(const at::Tensor& embedding, const AttackTask& task) {
  // Squared distances to every gallery row; the query's own row is masked out.
  auto d2 = (embedding.pow(2).sum(1, true) + task.gallery.pow(2).sum(1).unsqueeze(0) -
             2.0 * embedding.matmul(task.gallery.t()))
                .clamp_min(1e-12);
  const auto rows = torch::arange(task.gallery.size(0), task.gallery_labels.options()).unsqueeze(0);
  const auto self = rows == task.gallery_index.unsqueeze(1);
  const auto positive = (task.gallery_labels.unsqueeze(0) == task.labels.unsqueeze(1)) & ~self;
  const auto negative = task.gallery_labels.unsqueeze(0) != task.labels.unsqueeze(1);
  const double inf = std::numeric_limits<double>::infinity();
  auto d = d2.sqrt();
  auto nearest_positive = std::get<0>(d.masked_fill(~positive, inf).min(1));
  auto nearest_negative = std::get<0>(d.masked_fill(~negative, inf).min(1));
  return nearest_positive - nearest_negative;
}

at::Tensor normalize_per_example(const at::Tensor& g) {
  const auto norms = g.flatten(1).norm(2, 1).clamp_min(1e-12);
  return g / norms.view({-1, 1, 1, 1});
}

at::Tensor project_l2(const at::Tensor& delta, const at::Tensor& x, double eps) {
  auto d = (x + delta).clamp(0.0, 1.0) - x;
  const auto norms = d.flatten(1).norm(2, 1);
  const auto scale = (eps / norms.clamp_min(1e-12)).clamp_max(1.0);
  return d * scale.view({-1, 1, 1, 1});
}

at::Tensor query_normal(const at::Tensor& like, const at::Tensor& query_ids, std::uint64_t seed, std::uint32_t stream,
                        std::uint32_t sample) {
  const auto ids = query_ids.to(torch::kCPU).contiguous();
  const std::int64_t batch = like.size(0), per = like[0].numel();
  auto out = torch::empty({batch, per}, torch::kFloat);
  for (std::int64_t i = 0; i < batch; ++i)
    philox_normal(seed, stream, static_cast<std::uint32_t>(ids[i].item<std::int64_t>()), sample, per,
                  out[i].data_ptr<float>());
  return out.view(like.sizes()).to(like.device());
}

at::Tensor random_ball_start(const at::Tensor& x, const at::Tensor& query_ids, double eps, std::uint64_t seed,
                             std::uint32_t stream) {
  // Direction: a normal vector normalised; radius: eps * U^(1/d), U from one more normal
  // through Phi (uniform on (0,1)): a uniform point of the d-dimensional ball.
  const auto direction = normalize_per_example(query_normal(x, query_ids, seed, stream, 0));
  const auto z = query_normal(x, query_ids, seed, stream, 1).flatten(1).select(1, 0);
  const auto u = 0.5 * torch::erfc(-z / std::sqrt(2.0));
  const double dim = static_cast<double>(x[0].numel());
  const auto radius = eps * u.pow(1.0 / dim);
  return project_l2(direction * radius.view({-1, 1, 1, 1}), x, eps);
}

std::vector<at::Tensor> pgd_l2(const at::Tensor& x, const at::Tensor& query_ids, const PgdSettings& s,
                               const std::function<at::Tensor(const at::Tensor&)>& objective) {
  std::vector<at::Tensor> out;
  for (std::size_t e = 0; e < s.epsilons.size(); ++e) {
    const double eps = s.epsilons[e];
    at::Tensor best = x.clone(), best_value;
    for (std::int64_t restart = 0; restart < s.restarts; ++restart) {
      const auto stream = static_cast<std::uint32_t>(Hasher(s.seed).u64(e).u64(static_cast<std::uint64_t>(restart)).digest());
      at::Tensor delta = s.random_start ? random_ball_start(x, query_ids, eps, s.seed, stream) : torch::zeros_like(x);
      for (std::int64_t step = 0; step < s.steps; ++step) {
        delta.requires_grad_(true);
        const auto value = objective(x + delta);
        const auto grad = torch::autograd::grad({value.sum()}, {delta})[0];
        delta = project_l2(delta.detach() + s.step_fraction * eps * normalize_per_example(grad), x, eps);
      }
      at::Tensor value;
      {
        torch::NoGradGuard no_grad;
        value = objective(x + delta);
      }
      if (restart == 0) {
        best = x + delta;
        best_value = value;
      } else {
        const auto better = value > best_value;
        best = torch::where(better.view({-1, 1, 1, 1}), x + delta, best);
        best_value = torch::where(better, value, best_value);
      }
    }
    out.push_back(best.detach());
  }
  return out;
}

std::vector<ParamSpec> pgd_param_specs(const char* default_steps) {
  return {
      {.name = "norm", .type = ParamType::String, .default_value = "l2",
       .doc = "threat model: l2 over all pixels of a [0,1] image (the certified norm)", .choices = "l2"},
      {.name = "eps", .type = ParamType::FloatList, .default_value = "[0.05, 0.1, 0.25, 0.5]",
       .doc = "l2 budgets, in [0,1] pixel units (never divided by 255); at most 1000, beyond the diameter of any "
              "image the pipelines use",
       .min = 0, .max = 1000},
      {.name = "steps", .type = ParamType::Int, .default_value = default_steps, .doc = "gradient steps", .min = 1},
      {.name = "step_fraction", .type = ParamType::Float, .default_value = "0.25",
       .doc = "step length as a fraction of eps", .min = 0, .min_exclusive = true},
      {.name = "restarts", .type = ParamType::Int, .default_value = "1",
       .doc = "independent restarts; each example keeps its best", .min = 1},
      {.name = "random_start", .type = ParamType::Bool, .default_value = "true",
       .doc = "start from a uniform point of the eps ball"},
      {.name = "seed", .type = ParamType::Int, .default_value = "0", .doc = "attack seed (mixed with the run's)", .min = 0},
  };
}

PgdSettings parse_pgd_settings(const Params& p, std::uint64_t run_seed) {
  PgdSettings s;
  s.epsilons = p.get_float_list("eps");
  s.steps = p.get_int("steps");
  s.step_fraction = p.get_float("step_fraction");
  s.restarts = p.get_int("restarts");
  s.random_start = p.get_bool("random_start");
  s.seed = Hasher(run_seed).u64(static_cast<std::uint64_t>(p.get_int("seed"))).digest();
  return s;
}

}  // namespace rguard
