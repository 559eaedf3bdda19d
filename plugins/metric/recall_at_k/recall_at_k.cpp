// recall_at_k: Recall@k of the base model on clean queries (pytorch-metric-learning's
// definition: the query's own gallery row is removed; queries without any positive in
// the gallery are excluded).
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "rguard/error.hpp"
#include "rguard/metric.hpp"

namespace {

class RecallAtK final : public rguard::Metric {
 public:
  explicit RecallAtK(const rguard::Params& p) : ks_(p.get_int_list("k")), all_(p.get_string("queries") == "all") {
    if (ks_.empty()) throw rguard::Error("k: expected at least one K, e.g. k: [1, 2, 4, 8]");
  }

  std::vector<rguard::MetricValue> compute(const rguard::EvalView& eval) const override {
    const auto& q = all_ ? eval.all_queries : eval.queries;
    const std::int64_t max_k = *std::max_element(ks_.begin(), ks_.end());
    const auto neighbours = rguard::nearest_gallery_rows(q, eval.gallery, max_k);
    std::map<std::int64_t, std::int64_t> class_size;
    for (std::int64_t j = 0; j < eval.gallery.size; ++j) ++class_size[eval.gallery.label[j]];
    std::vector<std::int64_t> hits(ks_.size(), 0);
    std::int64_t counted = 0;
    for (std::int64_t i = 0; i < q.size; ++i) {
      const std::int64_t self = q.gallery_index ? q.gallery_index[i] : -1;
      const bool self_positive = self >= 0 && eval.gallery.label[self] == q.label[i];
      if (class_size[q.label[i]] - self_positive < 1) continue;  // a lone query
      ++counted;
      std::int64_t first_hit = -1;
      for (std::int64_t r = 0; r < max_k && first_hit < 0; ++r) {
        const std::int64_t row = neighbours[static_cast<std::size_t>(i * max_k + r)];
        if (row >= 0 && eval.gallery.label[row] == q.label[i]) first_hit = r;
      }
      for (std::size_t t = 0; t < ks_.size(); ++t) hits[t] += first_hit >= 0 && first_hit < ks_[t];
    }
    std::vector<rguard::MetricValue> out;
    for (std::size_t t = 0; t < ks_.size(); ++t)
      out.push_back({.name = fmt::format("recall@{}", ks_[t]),
                     .value = counted ? static_cast<double>(hits[t]) / static_cast<double>(counted) : 0.0,
                     .measure = "recall",
                     .k = ks_[t]});
    return out;
  }

 private:
  std::vector<std::int64_t> ks_;
  bool all_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Metric, "recall_at_k", "1.1", "Recall@k of the base model on clean queries", RecallAtK,
              (std::vector<rguard::ParamSpec>{{.name = "k", .type = rguard::ParamType::IntList, .default_value = "[1]",
                                               .doc = "the k values", .min = 1},
                                              {.name = "queries", .type = rguard::ParamType::String,
                                               .default_value = "certified",
                                               .doc = "the certified queries, or all queries with a positive",
                                               .choices = "certified|all"}}))
