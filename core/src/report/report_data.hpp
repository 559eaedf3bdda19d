// What `rguard report` reads of a run folder (internal to rguard_core): per sweep point,
// the per-query radii of certificates.csv (the chosen Recall@1 radius, each certificate's,
// the Recall@K radii) and the values of metrics.csv, selected by what each metric declared.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace rguard::report {

// One sweep point of one run.
struct Series {
  std::string point;  // the sweep point's name in the run's files
  std::string label;  // how legends and tables name it: by its values ("sigma=0.5, objective=noise")
  double sigma = 0, rho = 0;  // rho: the median over queries
  std::int64_t n = 0;
  // Per query, the radius credited to it: 0 unless certified (and, for Recall@1, correct).
  std::vector<double> radius;                             // the chosen Recall@1 radius
  std::map<std::string, std::vector<double>> by_certificate;  // "A", "B", "C", "D" (those the run has)
  std::map<std::int64_t, std::vector<double>> recall_at;  // K >= 2 -> Recall@K radius
  std::vector<double> rhos;                               // per query
  std::vector<double> samples;                            // per query: main samples drawn (n, or its look)
  double smoothed_recall = 0, abstain_rate = 0, acr = 0;
  std::optional<double> base_recall;  // Recall@1 of the clean base model, if measured
  std::optional<double> train_seconds;  // how long its backbone trained
  std::vector<double> metric_radii;   // radii of certified_recall metrics
  std::set<std::int64_t> metric_ks;   // their K values (Recall@K views show these, else every K kept)
  double cap = 0;                     // largest radius of the mean-based bounds at (sigma, median rho)
  std::int64_t at_cap = 0;
  std::map<std::string, std::map<double, double>> empirical;  // smoothed model: attack -> eps -> Recall@1
};

// The series of a run folder, after checking its files against manifest.json.
std::vector<Series> read_run(const std::filesystem::path& run, bool prefix_run_name);

// The fraction of `radius` above r.
double certified_fraction(const std::vector<double>& radius, double r);

// Largest radius of A and B at (sigma, rho): ||F-hat|| <= 1 caps them (docs/certificates.md).
double radius_cap(double sigma, double rho);

}  // namespace rguard::report
