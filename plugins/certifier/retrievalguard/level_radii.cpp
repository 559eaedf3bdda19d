// Certificate D (Theorem D, docs/certificates.md): the level-set radii on the margin over
// the nearest negatives, or per pair for the candidates most at risk, and their Recall@K.
#include <cmath>

#include "level_sets.hpp"
#include "margin_levels.hpp"
#include "pair_levels.hpp"
#include "retrievalguard.hpp"

namespace rguard::retrievalguard {

std::vector<double> RetrievalGuard::levels_at(const std::vector<double>& counts, std::int64_t count,
                                              const Look& look) const {
  if (!look.optimistic()) return rg::level_probabilities(counts, count, per_level_alpha(look.alpha));
  if (count == 0) return std::vector<double>(counts.size(), 0.0);
  const std::int64_t final_count = margin_ ? (look.final_n + every_ - 1) / every_ : look.final_n;
  // Each probability leans from its estimate toward its upper bound by the carried part.
  const auto upper = rg::level_upper_probabilities(counts, count, look.alpha);
  const double carried = look.carried(count * (margin_ ? every_ : 1));
  return rg::level_probabilities(rg::projected_counts(counts, count, upper, carried, final_count), final_count,
                                 per_level_alpha(look.final_alpha));
}

// R_B of every pair for the selection's p* (the mean's event).
std::vector<double> RetrievalGuard::pairs_for(std::int64_t positive, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                              std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2,
                              std::int64_t n, const double* sum, const double* squares, std::int64_t positives,
                              double rho, double sigma, const Look& look) const {
  rg::QueryGeometry geometry = main;
  geometry.positive = positive;
  return mean_radii(geometry, e, g, k, dot, norm2, n, sum, squares, positives, rho, sigma, look).pair_b;
}

// D per pair: max(R_B, R_D) for the candidates, R_B for the other negatives; Recall@k
// within the k-th smallest.
RetrievalGuard::LevelSetRadii RetrievalGuard::pair_radii(rguard::Certificate& c, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                         std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2, std::int64_t n,
                         const double* sum, const double* squares, std::int64_t positives, double sigma,
                         const double* level_state, const Look& look) const {
  std::int64_t positive = -1;
  const auto pairs = rg::read_pair_counts(level_state, candidates_, levels_, &positive);
  std::vector<double> candidates(static_cast<std::size_t>(candidates_), -1.0), levels, counts;
  for (std::size_t m = 0; m < pairs.size(); ++m) {
    candidates[m] = static_cast<double>(pairs[m].negative);
    levels.insert(levels.end(), pairs[m].levels.begin(), pairs[m].levels.end());
    counts.insert(counts.end(), pairs[m].counts.begin(), pairs[m].counts.end());
  }
  levels.resize(static_cast<std::size_t>(candidates_ * levels_), 0.0);
  counts.resize(static_cast<std::size_t>(candidates_ * levels_), 0.0);
  c.evidence.emplace_back("d_positive", std::vector<double>{static_cast<double>(positive)});
  c.evidence.emplace_back("d_candidates", std::move(candidates));
  c.evidence.emplace_back("d_levels", std::move(levels));
  c.evidence.emplace_back("d_counts", std::move(counts));
  if (positive < 0) return {};
  std::vector<double> pair = pairs_for(positive, main, e, g, k, dot, norm2, n, sum, squares, positives, c.rho, sigma, look);
  const double* ep = e + positive * k;
  for (const auto& candidate : pairs) {
    const auto at = std::lower_bound(main.negatives.begin(), main.negatives.end(), candidate.negative);
    if (at == main.negatives.end() || *at != candidate.negative) continue;
    const double* en = e + candidate.negative * k;
    double c2 = 0;
    for (std::int64_t d = 0; d < k; ++d) c2 += (ep[d] - en[d]) * (ep[d] - en[d]);
    const double threshold = (norm2[positive] - norm2[candidate.negative]) / (2 * std::sqrt(c2));
    const double radius = rg::level_set_radius(
        -1.0, candidate.levels, levels_at(candidate.counts, n, look), threshold, sigma);
    auto& slot = pair[static_cast<std::size_t>(at - main.negatives.begin())];
    slot = std::max(slot, radius);
  }
  LevelSetRadii out;
  for (std::int64_t r = 1; r <= ranks_; ++r) out.rank.push_back(kth_smallest(pair, static_cast<std::size_t>(r)));
  return out;
}

// D on the margin: R_D of V_k for each k; with a pool, also at most the smallest R_B of
// the negatives outside it.
RetrievalGuard::LevelSetRadii RetrievalGuard::margin_radii(rguard::Certificate& c, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                           std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2,
                           std::int64_t n, const double* sum, const double* squares, std::int64_t positives,
                           double sigma, const double* level_state, const Look& look) const {
  const rg::MarginLevels m = rg::read_margin_counts(level_state, ranks_, levels_, pool_);
  std::vector<double> excluded(static_cast<std::size_t>(ranks_ - 1), -1.0), levels, counts, pool(static_cast<std::size_t>(pool_), -1.0);
  std::copy(m.excluded.begin(), m.excluded.end(), excluded.begin());
  std::copy(m.pool.begin(), m.pool.end(), pool.begin());
  for (std::int64_t r = 0; r < ranks_; ++r) {
    levels.insert(levels.end(), m.levels[static_cast<std::size_t>(r)].begin(), m.levels[static_cast<std::size_t>(r)].end());
    counts.insert(counts.end(), m.counts[static_cast<std::size_t>(r)].begin(), m.counts[static_cast<std::size_t>(r)].end());
  }
  c.evidence.emplace_back("d_positive", std::vector<double>{static_cast<double>(m.positive)});
  c.evidence.emplace_back("d_counted", std::vector<double>{static_cast<double>(m.counted)});
  c.evidence.emplace_back("d_excluded", std::move(excluded));
  c.evidence.emplace_back("d_floors", m.floors);
  c.evidence.emplace_back("d_levels", std::move(levels));
  c.evidence.emplace_back("d_counts", std::move(counts));
  if (pool_ > 0) c.evidence.emplace_back("d_pool", std::move(pool));
  if (m.positive < 0) return {};
  double outside = kInf;  // the negatives V's max does not cover keep their R_B
  if (!m.pool.empty() && m.pool.size() < main.negatives.size()) {
    const auto pair = pairs_for(m.positive, main, e, g, k, dot, norm2, n, sum, squares, positives, c.rho, sigma, look);
    for (std::size_t i = 0; i < main.negatives.size(); ++i)
      if (!std::binary_search(m.pool.begin(), m.pool.end(), main.negatives[i])) outside = std::min(outside, pair[i]);
  }
  LevelSetRadii out;
  for (std::int64_t r = 0; r < ranks_; ++r) {
    if (static_cast<std::int64_t>(main.negatives.size()) <= r) {  // fewer than k negatives: e_p stays among the k nearest
      out.rank.push_back(kInf);
      continue;
    }
    const auto& t = m.levels[static_cast<std::size_t>(r)];
    const double radius = rg::level_set_radius(m.floors[static_cast<std::size_t>(r)], t,
                                               levels_at(m.counts[static_cast<std::size_t>(r)], m.counted, look),
                                               0.0, sigma);
    out.rank.push_back(std::min(radius, outside));
  }
  return out;
}

}  // namespace rguard::retrievalguard
