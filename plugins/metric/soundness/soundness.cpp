// soundness: for every certified query and every attack with eps below its certified
// radius, the smoothed 1-NN must stay correct. Counts the checks, and among them the
// re-estimates that prove it correct (confirmed), that prove a wrong-class item nearest
// (violations) and the rest (inconclusive); `allowed` is how many violations alpha makes
// plausible. The executor also fails the run loudly when violations exceed it.
#include "rguard/audit.hpp"
#include "rguard/metric.hpp"

#include <utility>

namespace {

class Soundness final : public rguard::Metric {
 public:
  explicit Soundness(const rguard::Params&) {}
  std::vector<rguard::MetricValue> compute(const rguard::EvalView& eval) const override {
    if (!eval.attacks || eval.attacks->empty()) return {};
    const auto c = rguard::count_soundness(*eval.attacks, eval.alpha);
    std::vector<rguard::MetricValue> out;
    for (const auto& [name, count] : {std::pair{"soundness/audited", c.audited}, {"soundness/confirmed", c.confirmed},
                                      {"soundness/inconclusive", c.inconclusive}, {"soundness/violations", c.violations},
                                      {"soundness/allowed_violations", c.allowed}})
      out.push_back({.name = name, .value = static_cast<double>(count), .measure = name});
    return out;
  }
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Metric, "soundness", "1.0",
              "attacks within certified radii: confirmed, inconclusive and violated certificates", Soundness,
              std::vector<rguard::ParamSpec>{})
