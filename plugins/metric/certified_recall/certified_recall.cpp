// certified_recall: certified Recall@K(r) = fraction of queries whose nearest positive is
// certified to stay among the K nearest gallery items within radius r (K = 1: the smoothed
// 1-NN is correct with certified radius > r); plus the smoothed Recall@1, the abstain rate,
// the average certified radius (ACR: the Recall@1 radius of correct certified queries, 0
// otherwise) and its median. Per query and radius it also reports a certified bound on the
// rank of the nearest positive (rank_bound@r; 0 where none of the kept ranks is certified).
#include <fmt/format.h>

#include <algorithm>

#include "rguard/error.hpp"
#include "rguard/metric.hpp"

namespace {

class CertifiedRecall final : public rguard::Metric {
 public:
  explicit CertifiedRecall(const rguard::Params& p) : radii_(p.get_float_list("radii")), ks_(p.get_int_list("k")) {
    if (ks_.empty()) throw rguard::Error("k: expected at least one K, e.g. k: [1, 2, 4, 8]");
  }

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
    out.push_back({.name = "smoothed_recall@1", .value = correct / count, .measure = "smoothed_recall", .k = 1});
    for (const std::int64_t k : ks_)
      for (double r : radii_) {
        double certified = 0;
        for (const auto& c : certificates) certified += radius_at(c, k) > r;
        out.push_back({.name = k == 1 ? fmt::format("certified_recall@{}", r) : fmt::format("certified_recall_at_{}@{}", k, r),
                       .value = certified / count,
                       .measure = "certified_recall",
                       .k = k,
                       .radius = r});
      }
    out.push_back({.name = "abstain_rate", .value = abstain / count, .measure = "abstain_rate"});
    double sum = 0;
    for (double v : credited) sum += v;
    out.push_back({.name = "average_certified_radius", .value = sum / count, .measure = "average_certified_radius", .k = 1});
    std::sort(credited.begin(), credited.end());
    double median = 0;
    if (!credited.empty()) {
      const std::size_t m = credited.size() / 2;
      median = credited.size() % 2 ? credited[m] : 0.5 * (credited[m - 1] + credited[m]);
    }
    out.push_back({.name = "median_certified_radius", .value = median, .measure = "median_certified_radius", .k = 1});
    return out;
  }

  std::vector<rguard::QueryColumn> query_columns(const rguard::EvalView& eval) const override {
    std::vector<rguard::QueryColumn> out;
    const auto& certificates = *eval.certificates;
    if (certificates.empty() || certificates.front().rank_radius.empty()) return out;
    for (double r : radii_) {
      rguard::QueryColumn column{fmt::format("rank_bound@{}", r), {}};
      for (const auto& c : certificates) {
        const auto& radii = c.rank_radius;
        const auto first = std::find_if(radii.begin(), radii.end(), [&](double radius) { return radius > r; });
        column.values.push_back(first == radii.end() ? 0.0 : static_cast<double>(first - radii.begin() + 1));
      }
      out.push_back(std::move(column));
    }
    return out;
  }

 private:
  // The radius within which the query's nearest positive stays among the k nearest; 0 when
  // it is not certified at all.
  static double radius_at(const rguard::Certificate& c, std::int64_t k) {
    if (k == 1) return !c.abstain && c.correct ? c.radius : 0.0;
    if (static_cast<std::int64_t>(c.rank_radius.size()) < k)
      throw rguard::Error(fmt::format("k: certified Recall@{} needs {} radii per query, but the certifier kept {}; keep K "
                                      "within what the certifier keeps (retrievalguard: certifier.ranks, at most 1024)",
                                      k, k, c.rank_radius.size()));
    return std::max(0.0, c.rank_radius[static_cast<std::size_t>(k - 1)]);
  }

  std::vector<double> radii_;
  std::vector<std::int64_t> ks_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Metric, "certified_recall", "1.1",
              "certified Recall@K at radii, smoothed Recall@1, abstain rate, average and median certified radius, "
              "per-query certified rank bounds",
              CertifiedRecall,
              (std::vector<rguard::ParamSpec>{{.name = "radii", .type = rguard::ParamType::FloatList,
                                               .default_value = "[0, 0.05, 0.1, 0.2, 0.5]",
                                               .doc = "l2 radii in [0,1] pixel units", .min = 0},
                                              {.name = "k", .type = rguard::ParamType::IntList, .default_value = "[1]",
                                               .doc = "the K of certified Recall@K (K > 1 needs certifier.ranks >= K)",
                                               .min = 1}}))
