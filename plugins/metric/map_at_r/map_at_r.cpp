// map_at_r: MAP@R and R-precision of the base model on clean queries, with
// pytorch-metric-learning's definitions (Musgrave et al. 2020, "A Metric Learning Reality
// Check"): R = the number of gallery items of the query's class (its own row removed);
// R-precision = (positives among the first R) / R; MAP@R = (1/R) sum_{i<=R} P(i) rel(i).
// Lone queries (R = 0) are excluded. Distances are computed in blocks of queries.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "rguard/metric.hpp"

namespace {

class MapAtR final : public rguard::Metric {
 public:
  explicit MapAtR(const rguard::Params& p) : all_(p.get_string("queries") == "all") {}

  std::vector<rguard::MetricValue> compute(const rguard::EvalView& eval) const override {
    const rguard::QueryView& q = all_ ? eval.all_queries : eval.queries;
    std::map<std::int64_t, std::int64_t> class_size;
    for (std::int64_t j = 0; j < eval.gallery.size; ++j) ++class_size[eval.gallery.label[j]];
    auto r_of = [&](std::int64_t i) {
      const std::int64_t self = q.gallery_index ? q.gallery_index[i] : -1;
      return class_size[q.label[i]] - (self >= 0 && eval.gallery.label[self] == q.label[i]);
    };
    std::int64_t max_r = 0;
    for (std::int64_t i = 0; i < q.size; ++i) max_r = std::max(max_r, r_of(i));
    double map_sum = 0, rp_sum = 0;
    std::int64_t counted = 0;
    // In chunks of queries, so the neighbour lists stay small whatever the gallery size.
    constexpr std::int64_t kChunk = 1024;
    for (std::int64_t start = 0; start < q.size; start += kChunk) {
      rguard::QueryView chunk = q;
      chunk.size = std::min(kChunk, q.size - start);
      chunk.embedding = q.embedding + start * eval.gallery.dim;
      chunk.label = q.label + start;
      chunk.gallery_index = q.gallery_index ? q.gallery_index + start : nullptr;
      const auto neighbours = rguard::nearest_gallery_rows(chunk, eval.gallery, max_r);
      for (std::int64_t i = 0; i < chunk.size; ++i) {
        const std::int64_t r = r_of(start + i);
        if (r == 0) continue;  // a lone query
        ++counted;
        double hits = 0, precision_sum = 0;
        for (std::int64_t rank = 0; rank < r; ++rank) {
          const std::int64_t row = neighbours[static_cast<std::size_t>(i * max_r + rank)];
          if (row >= 0 && eval.gallery.label[row] == chunk.label[i]) {
            hits += 1;
            precision_sum += hits / static_cast<double>(rank + 1);
          }
        }
        map_sum += precision_sum / static_cast<double>(r);
        rp_sum += hits / static_cast<double>(r);
      }
    }
    const double n = counted ? static_cast<double>(counted) : 1.0;
    return {{.name = "map@r", .value = map_sum / n, .measure = "map@r"},
            {.name = "r_precision", .value = rp_sum / n, .measure = "r_precision"}};
  }

 private:
  bool all_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Metric, "map_at_r", "1.0",
              "MAP@R and R-precision of the base model on clean queries (pytorch-metric-learning definitions)", MapAtR,
              (std::vector<rguard::ParamSpec>{{.name = "queries", .type = rguard::ParamType::String,
                                               .default_value = "certified",
                                               .doc = "the certified queries, or all queries with a positive",
                                               .choices = "certified|all"}}))
