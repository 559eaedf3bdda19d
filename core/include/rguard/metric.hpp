// Plugin kind "metric": numbers computed from embeddings and certificates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cmath>

#include "rguard/certificate.hpp"
#include "rguard/plugin.hpp"
#include "rguard/retrieval.hpp"

namespace rguard {

// How an attacked query fared (soundness audit, docs/attacks.md).
enum class AuditStatus : std::int8_t {
  NotAudited = 0,    // not certified at a radius above this eps
  Confirmed = 1,     // the re-estimate proves the smoothed 1-NN still correct
  Inconclusive = 2,  // the re-estimate is within its rho of a tie
  Violation = 3,     // the re-estimate proves a wrong-class item nearest: the certificate failed
  Skipped = 4,       // cascade: an earlier attack already broke this query at this eps
};

// One attack at one eps over the point's queries (same order as the certificates).
struct AttackOutcome {
  std::string attack;  // "pgd_l2" (with "#2" appended when a plugin appears twice)
  std::string parameters;  // the attack's plugin, version and every parameter
  double eps = 0;
  double rho = 0;      // of each re-estimate of F-hat at the adversarial query
  double alpha = 0;    // its failure probability
  std::int64_t samples = 0;
  std::vector<std::int64_t> query_id;
  std::vector<std::int8_t> base_correct;      // base model's 1-NN correct at x'
  std::vector<std::int8_t> smoothed_correct;  // re-estimated smoothed 1-NN correct at x'
  std::vector<std::int8_t> status;            // AuditStatus
  std::vector<double> perturbation;           // ||x' - x||_2
  std::vector<double> smoothed_margin;        // d_neg - d_pos of the re-estimate
  std::vector<float> images;                  // [Q, C, H, W] when audit.save_images
  std::vector<std::uint64_t> image_shape;
};

struct EvalView {
  GalleryView gallery;
  QueryView queries;                       // the certified queries, clean base embeddings
  QueryView all_queries;                   // every query of the dataset, clean base embeddings
  const std::vector<Certificate>* certificates = nullptr;  // one per query, same order
  const std::vector<AttackOutcome>* attacks = nullptr;     // empty without attacks
  double sigma = 0;
  double alpha = 0;  // the certificates' failure probability
};

// One number and what it measures, declared by the metric plugin: tables, plots and the
// run summary select values by these fields, never by parsing names.
struct MetricValue {
  std::string name;  // unique within a point, e.g. "recall@1", "certified_recall@0.05"
  double value = 0;
  // What is measured: "recall", "smoothed_recall", "certified_recall", "robust_recall",
  // "abstain_rate", "average_certified_radius", "median_certified_radius", "map@r",
  // "r_precision", "soundness/<count>", or a plugin's own.
  std::string measure;
  std::int64_t k = 0;        // Recall@K's K; 0 when there is none
  double radius = NAN;       // certified radius, or the attack's eps; NaN when there is none
  std::string attack;        // robust_recall: the attack
  std::string model;         // robust_recall: "base" or "smoothed"
};

// A value per certified query (same order as EvalView::certificates), for certificates.csv
// and certificates.h5, e.g. a certified bound on the rank of the nearest positive at a radius.
struct QueryColumn {
  std::string name;
  std::vector<double> values;
};

class Metric : public Plugin {
 public:
  virtual std::vector<MetricValue> compute(const EvalView& eval) const = 0;
  virtual std::vector<QueryColumn> query_columns(const EvalView&) const { return {}; }
};

}  // namespace rguard
