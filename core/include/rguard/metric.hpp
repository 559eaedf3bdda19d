// Plugin kind "metric": numbers computed from embeddings and certificates.
#pragma once

#include <string>
#include <vector>

#include "rguard/certifier.hpp"
#include "rguard/plugin.hpp"
#include "rguard/retrieval.hpp"

namespace rguard {

struct EvalView {
  GalleryView gallery;
  QueryView queries;                       // the certified queries, clean base embeddings
  const std::vector<Certificate>* certificates = nullptr;  // one per query, same order
  double sigma = 0;
};

struct MetricValue {
  std::string name;  // e.g. "recall@1", "certified_recall@0.05"
  double value = 0;
};

class Metric : public Plugin {
 public:
  virtual std::vector<MetricValue> compute(const EvalView& eval) const = 0;
};

}  // namespace rguard
