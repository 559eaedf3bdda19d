#include "pair_levels.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "level_sets.hpp"

namespace rguard::retrievalguard {

namespace {
constexpr double kRoundingMargin = 1e-12;  // |fl(<f, u>) - <f, u>| in double is far below this
}

PairPlan plan_pairs(const Selection& selection, std::int64_t candidates, std::int64_t levels, bool grid) {
  PairPlan plan;
  plan.positive = selection.positive;
  const auto used = std::min<std::size_t>(selection.ranked.size(), static_cast<std::size_t>(candidates));
  for (std::size_t i = 0; i < used; ++i) {
    const RankedNegative& r = selection.ranked[i];
    plan.candidates.push_back(r.row);
    const double step = 2.0 / static_cast<double>(levels + 1);
    const double s = std::max(r.spread, 1e-3);
    const auto row = grid ? even_levels(-1 + step, 1 - step, -1, 1, levels) : even_levels(r.mean - 6 * s, r.mean + 3 * s, -1, 1, levels);
    plan.levels.insert(plan.levels.end(), row.begin(), row.end());
  }
  return plan;
}

PairLevelCounts::PairLevelCounts(PairPlan plan, const double* gallery, std::int64_t dim, std::int64_t candidates,
                                 std::int64_t levels, bool grid)
    : plan_(std::move(plan)), dim_(dim), candidates_(candidates), levels_(levels), grid_(grid) {
  const double* ep = gallery + plan_.positive * dim;
  for (std::int64_t n : plan_.candidates) {
    const double* e = gallery + n * dim;
    double c2 = 0;
    for (std::int64_t d = 0; d < dim; ++d) c2 += (ep[d] - e[d]) * (ep[d] - e[d]);
    const double c = std::sqrt(c2);
    for (std::int64_t d = 0; d < dim; ++d) directions_.push_back((ep[d] - e[d]) / c);
  }
}

std::string PairLevelCounts::make_id(std::int64_t dim, std::int64_t candidates, std::int64_t levels, bool grid) {
  return fmt::format("pair_levels/{}/M={}/K={}/{}", dim, candidates, levels, grid ? "grid" : "selection");
}

void PairLevelCounts::init(double* state) const {
  std::fill(state, state + size(), 0.0);
  state[0] = static_cast<double>(plan_.positive);
  for (std::int64_t m = 0; m < candidates_; ++m)
    state[1 + m] = m < static_cast<std::int64_t>(plan_.candidates.size()) ? static_cast<double>(plan_.candidates[m]) : -1.0;
  std::copy(plan_.levels.begin(), plan_.levels.end(), state + 1 + candidates_);
}

void PairLevelCounts::add(const double* unit, std::int64_t count, double* state) const {
  const auto used = static_cast<std::int64_t>(plan_.candidates.size());
  double* bins = state + 1 + candidates_ + candidates_ * levels_;
  for (std::int64_t i = 0; i < count; ++i) {
    const double* f = unit + i * dim_;
    for (std::int64_t m = 0; m < used; ++m) {
      const double* u = directions_.data() + m * dim_;
      double z = 0;
      for (std::int64_t d = 0; d < dim_; ++d) z += f[d] * u[d];
      bins[m * (levels_ + 1) + levels_below(plan_.levels.data() + m * levels_, levels_, z, kRoundingMargin)] += 1.0;
    }
  }
}

std::vector<PairLevels> read_pair_counts(const double* state, std::int64_t candidates, std::int64_t levels,
                                         std::int64_t* positive) {
  *positive = static_cast<std::int64_t>(state[0]);
  std::vector<PairLevels> out;
  const double* t = state + 1 + candidates;
  const double* bins = t + candidates * levels;
  for (std::int64_t m = 0; m < candidates; ++m) {
    const auto negative = static_cast<std::int64_t>(state[1 + m]);
    if (negative < 0) continue;
    out.push_back({negative, std::vector<double>(t + m * levels, t + (m + 1) * levels),
                   counts_from_bins(bins + m * (levels + 1), levels)});
  }
  return out;
}

}  // namespace rguard::retrievalguard
