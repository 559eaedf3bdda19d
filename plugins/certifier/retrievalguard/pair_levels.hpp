// Certificate D on single pairs: for each of the M negatives most at risk, the level sets of
// its pair projection Z = <f, u_n> in [-1, 1], u_n = (e_p - e_n)/||e_p - e_n||; every other
// negative keeps its mean-only radius R_B (docs/certificates.md, "D per pair").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rguard/statistics.hpp"
#include "selection.hpp"

namespace rguard::retrievalguard {

// The candidates (the M first of the selection's ranking) and each one's K levels: evenly
// from 6 selection standard deviations below its selection mean to 3 above ("selection"),
// or the fixed grid -1 + 2i/(K + 1) ("grid").
struct PairPlan {
  std::int64_t positive = -1;
  std::vector<std::int64_t> candidates;
  std::vector<double> levels;  // [candidates x K]
};
PairPlan plan_pairs(const Selection& selection, std::int64_t candidates, std::int64_t levels, bool grid);

// State = [p*, candidates (M, -1 padded), levels (M x K), bins (M x (K + 1))].
class PairLevelCounts final : public Statistic {
 public:
  PairLevelCounts(PairPlan plan, const double* gallery, std::int64_t dim, std::int64_t candidates, std::int64_t levels,
                  bool grid);
  static std::string make_id(std::int64_t dim, std::int64_t candidates, std::int64_t levels, bool grid);
  std::string id() const override { return make_id(dim_, candidates_, levels_, grid_); }
  std::int64_t size() const override { return 1 + candidates_ + candidates_ * levels_ + candidates_ * (levels_ + 1); }
  void init(double* state) const override;
  void add(const double* unit, std::int64_t count, double* state) const override;

 private:
  PairPlan plan_;
  std::int64_t dim_, candidates_, levels_;
  bool grid_;
  std::vector<double> directions_;  // [plan_.candidates.size() x dim]
};

// One candidate's levels and counts #{Z >= t_i}, read back from a PairLevelCounts state.
struct PairLevels {
  std::int64_t negative = -1;
  std::vector<double> levels, counts;
};
std::vector<PairLevels> read_pair_counts(const double* state, std::int64_t candidates, std::int64_t levels,
                                         std::int64_t* positive);

}  // namespace rguard::retrievalguard
