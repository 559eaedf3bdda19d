// empirical_robust_recall: Recall@1 under each attack and eps, for the base model (its 1-NN
// at the adversarial query) and for the smoothed model (F-hat re-estimated there with
// fresh noise; audit.samples samples). Names: robust_recall/<attack>/<eps>/<base|smoothed>.
#include <fmt/format.h>

#include "rguard/metric.hpp"

namespace {

class EmpiricalRobustRecall final : public rguard::Metric {
 public:
  explicit EmpiricalRobustRecall(const rguard::Params&) {}
  std::vector<rguard::MetricValue> compute(const rguard::EvalView& eval) const override {
    std::vector<rguard::MetricValue> out;
    if (!eval.attacks) return out;
    for (const auto& o : *eval.attacks) {
      const double count = static_cast<double>(std::max<std::size_t>(1, o.base_correct.size()));
      double base = 0, smoothed = 0;
      for (auto v : o.base_correct) base += v;
      for (auto v : o.smoothed_correct) smoothed += v;
      for (const auto& [model, hits] : {std::pair{"base", base}, {"smoothed", smoothed}})
        out.push_back({.name = fmt::format("robust_recall/{}/{}/{}", o.attack, o.eps, model),
                       .value = hits / count,
                       .measure = "robust_recall",
                       .k = 1,
                       .radius = o.eps,
                       .attack = o.attack,
                       .model = model});
    }
    return out;
  }
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Metric, "empirical_robust_recall", "1.1",
              "Recall@1 under each attack and eps, base model and re-estimated smoothed model", EmpiricalRobustRecall,
              std::vector<rguard::ParamSpec>{})
