// certified_recall: certified Recall@1(r) = fraction of queries whose smoothed 1-NN is
// correct with certified radius > r; plus the smoothed Recall@1, the abstain rate, the
// average certified radius (ACR: radius of correct certified queries, 0 otherwise) and
// the median of that radius.
#include <fmt/format.h>

#include <algorithm>

#include "rguard/metric.hpp"

namespace {

class CertifiedRecall final : public rguard::Metric {
 public:
  explicit CertifiedRecall(const rguard::Params& p) : radii_(p.get_float_list("radii")) {}

  std::vector<rguard::MetricValue> compute(const rguard::EvalView& eval) const override {
    const auto& certificates = *eval.certificates;
    const double count = static_cast<double>(std::max<std::size_t>(1, certificates.size()));
    std::vector<double> credited;  // radius where certified and correct, else 0
    double correct = 0, abstain = 0;
    for (const auto& c : certificates) {
      correct += c.correct;
      abstain += c.abstain;
      credited.push_back(!c.abstain && c.correct ? c.radius : 0.0);
    }
    std::vector<rguard::MetricValue> out;
    out.push_back({"smoothed_recall@1", correct / count});
    for (double r : radii_) {
      double certified = 0;
      for (const auto& c : certificates) certified += !c.abstain && c.correct && c.radius > r;
      out.push_back({fmt::format("certified_recall@{}", r), certified / count});
    }
    out.push_back({"abstain_rate", abstain / count});
    double sum = 0;
    for (double v : credited) sum += v;
    out.push_back({"average_certified_radius", sum / count});
    std::sort(credited.begin(), credited.end());
    double median = 0;
    if (!credited.empty()) {
      const std::size_t m = credited.size() / 2;
      median = credited.size() % 2 ? credited[m] : 0.5 * (credited[m - 1] + credited[m]);
    }
    out.push_back({"median_certified_radius", median});
    return out;
  }

 private:
  std::vector<double> radii_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Metric, "certified_recall", "1.0",
              "certified Recall@1 at radii, smoothed Recall@1, abstain rate, average and median certified radius",
              CertifiedRecall,
              (std::vector<rguard::ParamSpec>{{.name = "radii", .type = rguard::ParamType::FloatList,
                                               .default_value = "[0, 0.05, 0.1, 0.2, 0.5]",
                                               .doc = "l2 radii in [0,1] pixel units", .min = 0}}))
