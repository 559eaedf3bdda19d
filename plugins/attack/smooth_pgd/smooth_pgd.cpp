// smooth_pgd: the pgd_l2 objective on the smoothed model (SmoothAdv, Salman et al. 2019):
// each step's embedding is the average of f(x' + delta_j) over m draws of the pipeline's
// noise plugin (expectation over transformation), so the gradient is that of a Monte-Carlo
// estimate of F. Draws are counter-based per query: sample (evaluation x m + j).
#include <torch/torch.h>

#include "rguard/adversarial.hpp"
#include "rguard/backbone.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/noise.hpp"
#include "rguard/tensors.hpp"

namespace {

class SmoothPgd final : public rguard::Attack {
 public:
  explicit SmoothPgd(const rguard::Params& p) : params_(p), draws_(p.get_int("m")) {}
  std::vector<double> epsilons() const override { return params_.get_float_list("eps"); }
  std::vector<at::Tensor> perturb(rguard::Backbone& model, const rguard::AttackTask& task) override {
    if (!task.noise) throw rguard::Error("attack smooth_pgd: needs the pipeline's noise (smoothing) model");
    std::int64_t call = 0;  // a fresh set of m draws for every objective evaluation
    const auto settings = rguard::parse_pgd_settings(params_, task.seed);
    const std::uint64_t stream = rguard::Hasher(settings.seed).text("smooth_pgd").digest();
    const auto ids_tensor = task.query_ids.to(torch::kCPU).contiguous();
    const std::vector<std::int64_t> ids(ids_tensor.data_ptr<std::int64_t>(), ids_tensor.data_ptr<std::int64_t>() + ids_tensor.numel());
    return rguard::pgd_l2(task.images, task.query_ids, settings, [&](const at::Tensor& x) {
      at::Tensor mean;
      for (std::int64_t j = 0; j < draws_; ++j) {
        const std::vector<std::int64_t> samples(ids.size(), call * draws_ + j);
        const auto e = model.forward(x + rguard::noise_like(*task.noise, stream, x, ids, samples));
        mean = j == 0 ? e : mean + e;
      }
      ++call;
      return rguard::retrieval_margin(mean / static_cast<double>(draws_), task);
    });
  }

 private:
  rguard::Params params_;
  std::int64_t draws_;
};

std::vector<rguard::ParamSpec> schema() {
  auto specs = rguard::pgd_param_specs("10");
  specs.push_back({.name = "m", .type = rguard::ParamType::Int, .default_value = "16",
                   .doc = "noise draws per objective evaluation (SmoothAdv tests with 32)", .min = 1});
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Attack, "smooth_pgd", "1.1",
              "l2 PGD on the smoothed model: expectation over m draws of the noise plugin per step (SmoothAdv, EOT)",
              SmoothPgd,
              schema())
