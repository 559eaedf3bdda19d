// The retrievalguard certifier's class (internal to the plugin). Its member functions live
// by job: retrievalguard.cpp (parameters, what is kept of the samples, the stopping
// decision, the plugin entry), certify.cpp (one query's certificate: p*, A, B, C, the
// chosen radius, Recall@K), level_radii.cpp (certificate D on the margin or on pairs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "geometry.hpp"
#include "level_sets.hpp"
#include "rguard/certifier.hpp"
#include "rguard/sequential.hpp"

namespace rguard::retrievalguard {

namespace rg = rguard::retrievalguard;
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// The k-th smallest of `radii` (k >= 1); +inf when there are fewer than k: fewer negatives
// than k can never push a positive out of the k nearest.
inline double kth_smallest(std::vector<double> radii, std::size_t k) {
  if (radii.size() < k) return kInf;
  std::nth_element(radii.begin(), radii.begin() + static_cast<std::ptrdiff_t>(k - 1), radii.end());
  return radii[k - 1];
}

class RetrievalGuard final : public rguard::Certifier {
 public:
  explicit RetrievalGuard(const rguard::Params& p);

  rguard::SamplingPlan plan() const override { return plan_; }
  double alpha() const override { return alpha_; }

  void check_noise(const rguard::Noise& noise) const override;

  std::string statistics_id(const rguard::GalleryView& gallery) const override;

  rguard::Statistics selection_statistics(const rguard::GalleryView& gallery) const override;

  rguard::Statistics statistics(const rguard::QueryInfo& query, const rguard::GalleryView& gallery,
                                const double* selection) const override;

  std::vector<std::pair<std::string, std::string>> describe() const override;

  bool need_more(const rguard::QueryInfo& query, const rguard::GalleryView& gallery, const rguard::QueryState& state,
                 double sigma) const override;

  rguard::Certificate certify(const rguard::QueryInfo& query, const rguard::GalleryView& gallery,
                              const rguard::QueryState& state, double sigma) const override {
    return certify_at(query, gallery, state, sigma, look_for(state.samples));
  }

 private:
  // The alpha a certificate at `samples` main samples spends: alpha, or with sequential
  // sampling its look's share (Theorem S). final_n > 0 asks for the stopping rule's
  // projection to final_n samples instead of a certificate: the mean and the level
  // probabilities lean in the query's favour by their one-sided deviations at `alpha` (the
  // `optimism` parameter), the deviations left are those of final_n samples at final_alpha.
  struct Look {
    double alpha = 0;
    std::int64_t final_n = 0;
    double final_alpha = 0;
    bool optimistic() const { return final_n > 0; }
    // How much of a lean at m samples carries to the estimate at final_n: given the first
    // m, the final mean's deviation from the current one has sqrt(1 - m / final_n) of the
    // current one's standard deviation (the rest is already drawn).
    double carried(std::int64_t m) const {
      return m >= final_n ? 0.0 : std::sqrt(1.0 - static_cast<double>(m) / static_cast<double>(final_n));
    }
  };
  Look look_for(std::int64_t samples) const;

  rguard::Certificate certify_at(const rguard::QueryInfo& query, const rguard::GalleryView& gallery,
                                 const rguard::QueryState& state, double sigma, const Look& look) const;

  bool directional() const { return bound_ == "directional"; }
  bool level_sets() const { return plan_.selection > 0; }
  // Each event gets its share: the mean's (A, B, C) and the level sets' (D) hold together
  // with probability >= 1 - alpha (docs/certificates.md, "Combining certificates").
  double mean_alpha(double alpha) const { return level_sets() ? alpha / 2 : alpha; }
  // Clopper-Pearson per level, a union bound over every level of every statistic.
  double per_level_alpha(double alpha) const {
    return (alpha - mean_alpha(alpha)) / static_cast<double>((margin_ ? ranks_ : candidates_) * levels_);
  }
  // Certificate D's level probabilities at `count` counted samples: lower bounds, or for
  // the projection the lower bounds that final_n samples would give if each probability
  // were at its upper bound at `look.alpha` now.
  std::vector<double> levels_at(const std::vector<double>& counts, std::int64_t count, const Look& look) const;
  std::int64_t shortlist() const { return std::max<std::int64_t>(64, 4 * (margin_ ? ranks_ : candidates_)); }

  // The gallery rows renormalised in double: the bounds assume unit vectors exactly.
  const double* unit_gallery(const rguard::GalleryView& gallery) const;

  // A, B and C for the geometry's p* (B per pair too), on the mean event.
  rg::Radii mean_radii(rg::QueryGeometry geometry, const double* e, std::int64_t g, std::int64_t k,
                       const std::vector<double>& dot, const std::vector<double>& norm2, std::int64_t n, const double* sum,
                       const double* squares, std::int64_t positives, double rho, double sigma, const Look& look) const;

  // Certificate D: rank[k - 1] is its radius for Recall@k (rank[0] = R_D); empty when the
  // selection found no positive.
  struct LevelSetRadii {
    std::vector<double> rank;
  };

  // R_B of every pair for the selection's p* (the mean's event).
  std::vector<double> pairs_for(std::int64_t positive, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                                std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2,
                                std::int64_t n, const double* sum, const double* squares, std::int64_t positives,
                                double rho, double sigma, const Look& look) const;

  // D per pair: max(R_B, R_D) for the candidates, R_B for the other negatives; Recall@k
  // within the k-th smallest.
  LevelSetRadii pair_radii(rguard::Certificate& c, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                           std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2, std::int64_t n,
                           const double* sum, const double* squares, std::int64_t positives, double sigma,
                           const double* level_state, const Look& look) const;

  // D on the margin: R_D of V_k for each k; with a pool, also at most the smallest R_B of
  // the negatives outside it.
  LevelSetRadii margin_radii(rguard::Certificate& c, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                             std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2,
                             std::int64_t n, const double* sum, const double* squares, std::int64_t positives,
                             double sigma, const double* level_state, const Look& look) const;

  rguard::SamplingPlan plan_;
  double alpha_;
  std::string choice_;
  std::string bound_;
  bool margin_;
  std::int64_t candidates_, levels_;
  bool grid_;
  std::int64_t pool_, every_, ranks_;
  bool sequential_;
  double optimism_;
  std::vector<double> targets_;
  std::vector<std::int64_t> target_ranks_;
  rguard::SequentialSchedule schedule_;
};

}  // namespace rguard::retrievalguard
