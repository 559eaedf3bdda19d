// A metric that always throws a std::logic_error: a failure after every sample is stored,
// which must cost none of them.
#include <stdexcept>

#include "rguard/metric.hpp"

namespace {

class FailingMetric final : public rguard::Metric {
 public:
  explicit FailingMetric(const rguard::Params&) {}
  std::vector<rguard::MetricValue> compute(const rguard::EvalView&) const override {
    throw std::logic_error("failing_metric: compute failed on purpose");
  }
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Metric, "failing_metric", "0", "fails on purpose", FailingMetric,
              std::vector<rguard::ParamSpec>{})
