// retrievalguard: certified l2 radii for smoothed 1-NN retrieval and certified Recall@K
// (product.md section 2; proofs in docs/certificates.md). It declares what is kept of each
// query's noise (the sum, the second moments for the directional bound, and the level
// counts of certificate D, placed from the selection samples), picks p*, assembles one
// query's geometry and chooses the radius. The bounds: geometry.hpp (A, B, C),
// level_sets.hpp with margin_levels.hpp or pair_levels.hpp (D); its parameters: schema.hpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "geometry.hpp"
#include "level_sets.hpp"
#include "margin_levels.hpp"
#include "pair_levels.hpp"
#include "schema.hpp"
#include "selection.hpp"
#include "rguard/certifier.hpp"
#include "rguard/concentration.hpp"
#include "rguard/error.hpp"
#include "rguard/noise.hpp"

namespace {

namespace rg = rguard::retrievalguard;
constexpr double kInf = std::numeric_limits<double>::infinity();

// The k-th smallest of `radii` (k >= 1); +inf when there are fewer than k: fewer negatives
// than k can never push a positive out of the k nearest.
double kth_smallest(std::vector<double> radii, std::size_t k) {
  if (radii.size() < k) return kInf;
  std::nth_element(radii.begin(), radii.begin() + static_cast<std::ptrdiff_t>(k - 1), radii.end());
  return radii[k - 1];
}

class RetrievalGuard final : public rguard::Certifier {
 public:
  explicit RetrievalGuard(const rguard::Params& p)
      : plan_{p.get_int("n"), p.get_int("selection"), p.get_int("batch"), p.get_int("queries")},
        alpha_(p.get_float("alpha")),
        choice_(p.get_string("radius")),
        bound_(p.get_string("bound")),
        margin_(p.get_string("level_statistic") == "margin"),
        candidates_(p.get_int("candidates")),
        levels_(p.get_int("levels")),
        grid_(p.get_string("level_placement") == "grid"),
        pool_(p.get_int("pool")),
        every_(p.get_int("level_every")),
        ranks_(p.get_int("ranks")) {
    if (margin_ && pool_ > 0 && pool_ < ranks_)
      throw rguard::Error(fmt::format("certifier.pool: {} negatives cannot hold the {} that certified Recall@{} leaves "
                                      "out; set pool >= ranks ({}) or 0 (every negative)",
                                      pool_, ranks_ - 1, ranks_, ranks_));
    if (margin_ && grid_)
      throw rguard::Error("certifier.level_placement: 'grid' is for level_statistic: pairs; the margin's levels are "
                          "placed from the selection samples");
    // D is the only certificate that needs the selection samples; without it alpha is not split.
    if (choice_ != "max" && choice_ != "d") plan_.selection = 0;
    if (choice_ == "d" && plan_.selection == 0)
      throw rguard::Error("certifier.radius: 'd' needs the selection phase that places the levels; set certifier.selection "
                          "> 0 (100 is Cohen et al.'s n0)");
    if (plan_.selection == 1)
      throw rguard::Error("certifier.selection: 1 sample gives no spread to place levels with; use 0 (no certificate D) or "
                          "at least 2 (100 is Cohen et al.'s n0)");
  }

  rguard::SamplingPlan plan() const override { return plan_; }
  double alpha() const override { return alpha_; }

  void check_noise(const rguard::Noise& noise) const override {
    if (std::strcmp(noise.family(), "gaussian") != 0)
      throw rguard::Error(fmt::format(
          "certifier retrievalguard: its theorem covers Gaussian noise only, but the noise plugin is '{}'; "
          "use noise: {{plugin: gaussian, sigma: ...}}",
          noise.family()));
  }

  std::string statistics_id(const rguard::GalleryView& gallery) const override {
    std::string id = rguard::statistics_id(selection_statistics(gallery)) + ";" + rguard::sum_statistic(gallery.dim)->id();
    if (directional()) id += "+" + rguard::second_moment_statistic(gallery.dim)->id();
    if (level_sets())
      id += "+" + (margin_ ? rg::MarginLevelCounts::make_id(gallery.dim, ranks_, levels_, pool_, every_)
                           : rg::PairLevelCounts::make_id(gallery.dim, candidates_, levels_, grid_));
    return id;
  }

  rguard::Statistics selection_statistics(const rguard::GalleryView& gallery) const override {
    if (!level_sets()) return {};
    return {rguard::samples_statistic(plan_.selection, gallery.dim)};
  }

  rguard::Statistics statistics(const rguard::QueryInfo& query, const rguard::GalleryView& gallery,
                                const double* selection) const override {
    rguard::Statistics parts{rguard::sum_statistic(gallery.dim)};
    if (directional()) parts.push_back(rguard::second_moment_statistic(gallery.dim));
    if (level_sets()) {
      const double* unit = unit_gallery(gallery);
      const double* samples = selection + 1;  // after the samples statistic's count
      const rg::Selection chosen = rg::select_from_samples(unit, gallery.label, gallery.size, gallery.dim, query.label,
                                                           query.gallery_index, samples, plan_.selection, shortlist());
      if (margin_)
        parts.push_back(std::make_shared<rg::MarginLevelCounts>(
            rg::plan_margin(chosen, gallery.embedding, gallery.size, gallery.dim, gallery.label, query.label,
                            query.gallery_index, samples, plan_.selection, ranks_, levels_, pool_),
            gallery.embedding, gallery.size, gallery.dim, ranks_, levels_, pool_, every_));
      else
        parts.push_back(std::make_shared<rg::PairLevelCounts>(rg::plan_pairs(chosen, candidates_, levels_, grid_), unit,
                                                              gallery.dim, candidates_, levels_, grid_));
    }
    return parts;
  }

  std::vector<std::pair<std::string, std::string>> describe() const override {
    std::vector<std::pair<std::string, std::string>> out{
        {"bound", bound_},
        {"radius", choice_},
        {"alpha_mean_event", fmt::format("{}", mean_alpha())},
    };
    if (level_sets()) {
      out.emplace_back("alpha_level_event", fmt::format("{}", alpha_ - mean_alpha()));
      out.emplace_back("alpha_per_level", fmt::format("{}", per_level_alpha()));
      out.emplace_back("level_statistic", margin_ ? "margin" : "pairs");
      out.emplace_back("levels", fmt::format("{}", levels_));
      if (margin_) {
        out.emplace_back("pool", fmt::format("{}", pool_));
        out.emplace_back("level_every", fmt::format("{}", every_));
      } else {
        out.emplace_back("candidates", fmt::format("{}", candidates_));
        out.emplace_back("level_placement", grid_ ? "grid" : "selection");
      }
    }
    out.emplace_back("ranks", fmt::format("{}", ranks_));
    return out;
  }

  rguard::Certificate certify(const rguard::QueryInfo& query, const rguard::GalleryView& gallery,
                              const rguard::QueryState& state, double sigma) const override {
    const std::int64_t g = gallery.size, k = gallery.dim, n = state.samples;
    rguard::Certificate c;
    c.query_id = query.query_id;
    c.label = query.label;
    c.n = n;
    const double* sum = state.main;
    std::vector<double> f(static_cast<std::size_t>(k));
    double f_norm2 = 0;
    for (std::int64_t d = 0; d < k; ++d) {
      f[d] = sum[d] / static_cast<double>(n);
      f_norm2 += f[d] * f[d];
    }
    c.f_norm = std::sqrt(f_norm2);
    c.evidence.emplace_back("mean_embedding", f);
    // The directional bound has no norm radius: it bounds each direction the radii use.
    c.rho = bound_ == "bernstein"    ? rguard::bernstein_radius(n, mean_alpha(), c.f_norm)
            : bound_ == "mcdiarmid" ? rguard::mcdiarmid_radius(n, mean_alpha())
                                    : kInf;
    const double* e = unit_gallery(gallery);
    std::vector<double> dot(static_cast<std::size_t>(g)), norm2(static_cast<std::size_t>(g), 1.0);
    for (std::int64_t j = 0; j < g; ++j) {
      double s = 0;
      for (std::int64_t d = 0; d < k; ++d) s += e[j * k + d] * f[d];
      dot[j] = s;
    }

    rg::QueryGeometry geometry;
    geometry.f_norm2 = f_norm2;
    std::int64_t positives = 0;
    double best_pos = kInf, best_any = kInf;
    for (std::int64_t j = 0; j < g; ++j) {
      if (j == query.gallery_index) continue;
      const double distance2 = f_norm2 - 2.0 * dot[j] + 1.0;  // ||F-hat - e_j||^2
      if (distance2 < best_any) {
        best_any = distance2;
        c.predict_index = j;
      }
      if (gallery.label[j] == query.label) {
        ++positives;
        if (distance2 < best_pos) {
          best_pos = distance2;
          geometry.positive = j;
        }
      } else {
        geometry.negatives.push_back(j);
      }
    }
    if (c.predict_index >= 0) c.predict_label = gallery.label[c.predict_index];
    c.correct = c.predict_index >= 0 && c.predict_label == query.label;
    if (geometry.positive < 0) return c;  // no positive: nothing to certify (abstain)

    const double* squares = directional() ? sum + k : nullptr;
    if (directional()) c.evidence.emplace_back("sum_squares", std::vector<double>(squares, squares + rguard::packed_size(k)));
    const rg::Radii mean = mean_radii(geometry, e, g, k, dot, norm2, n, sum, squares, positives, c.rho, sigma);
    if (directional()) c.rho = mean.b_deviation;  // the deviation at the negative that bounds R_B
    c.d_pos = mean.d_pos;
    c.d_neg = mean.d_neg;
    c.radius_a = mean.a;
    c.radius_b = mean.b;
    c.radius_c = mean.c;

    LevelSetRadii d;
    if (level_sets()) {
      const double* level_state = state.main + k + (directional() ? rguard::packed_size(k) : 0);
      d = margin_ ? margin_radii(c, geometry, e, g, k, dot, norm2, n, sum, squares, positives, sigma, level_state)
                  : pair_radii(c, geometry, e, g, k, dot, norm2, n, sum, squares, positives, sigma, level_state);
      if (!d.rank.empty()) c.radius_d = d.rank.front();
    }
    const double chosen = choice_ == "a"   ? c.radius_a
                          : choice_ == "b" ? c.radius_b
                          : choice_ == "c" ? c.radius_c
                          : choice_ == "d" ? c.radius_d
                                           : std::max({c.radius_a, c.radius_b, c.radius_c, c.radius_d});
    // Each positive radius implies F-hat is nearer a positive than every negative, so a
    // certified query is always correct; requiring it guards against rounding only.
    c.abstain = !(chosen > 0) || !c.correct;
    c.radius = c.abstain ? 0.0 : chosen;
    // Recall@K: within the k-th smallest pair radius at most k - 1 negatives can come
    // nearer than that p*, and so can within R_D of V_k; either way a positive stays among
    // the k nearest (docs/certificates.md, "Certified Recall@K").
    c.rank_radius.assign(static_cast<std::size_t>(ranks_), 0.0);
    for (std::size_t r = 0; r < c.rank_radius.size(); ++r) {
      double radius = r == 0 ? c.radius : c.rank_radius[r - 1];
      if (r > 0 && (choice_ == "max" || choice_ == "b")) radius = std::max(radius, kth_smallest(mean.pair_b, r + 1));
      if (r > 0 && (choice_ == "max" || choice_ == "d") && r < d.rank.size()) radius = std::max(radius, d.rank[r]);
      c.rank_radius[r] = radius;
    }
    return c;
  }

 private:
  bool directional() const { return bound_ == "directional"; }
  bool level_sets() const { return plan_.selection > 0; }
  // Each event gets its share: the mean's (A, B, C) and the level sets' (D) hold together
  // with probability >= 1 - alpha (docs/certificates.md, "Combining certificates").
  double mean_alpha() const { return level_sets() ? alpha_ / 2 : alpha_; }
  // Clopper-Pearson per level, a union bound over every level of every statistic.
  double per_level_alpha() const {
    return (alpha_ - mean_alpha()) / static_cast<double>((margin_ ? ranks_ : candidates_) * levels_);
  }
  std::int64_t shortlist() const { return std::max<std::int64_t>(64, 4 * (margin_ ? ranks_ : candidates_)); }

  // The gallery rows renormalised in double: the bounds assume unit vectors exactly.
  const double* unit_gallery(const rguard::GalleryView& gallery) const {
    if (gallery.unit) return gallery.unit;
    thread_local std::vector<double> local;
    local = rguard::unit_rows(gallery.embedding, gallery.size, gallery.dim);
    return local.data();
  }

  // A, B and C for the geometry's p* (B per pair too), on the mean event.
  rg::Radii mean_radii(rg::QueryGeometry geometry, const double* e, std::int64_t g, std::int64_t k,
                       const std::vector<double>& dot, const std::vector<double>& norm2, std::int64_t n, const double* sum,
                       const double* squares, std::int64_t positives, double rho, double sigma) const {
    std::vector<double> gram_p(static_cast<std::size_t>(g));
    const double* ep = e + geometry.positive * k;
    for (std::int64_t j = 0; j < g; ++j) {
      double s = 0;
      for (std::int64_t d = 0; d < k; ++d) s += ep[d] * e[j * k + d];
      gram_p[j] = s;
    }
    geometry.dot = dot.data();
    geometry.norm2 = norm2.data();
    geometry.gram_p = gram_p.data();
    std::vector<double> pair_deviation, item_deviation;
    if (squares)
      rg::set_directional_deviations(geometry, e, g, k, rguard::sample_covariance(n, k, sum, squares), n, positives,
                                     mean_alpha(), pair_deviation, item_deviation);
    return {rg::certified_radii(geometry, rho, sigma)};
  }

  // Certificate D: rank[k - 1] is its radius for Recall@k (rank[0] = R_D); empty when the
  // selection found no positive.
  struct LevelSetRadii {
    std::vector<double> rank;
  };

  // R_B of every pair for the selection's p* (the mean's event).
  std::vector<double> pairs_for(std::int64_t positive, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                                std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2,
                                std::int64_t n, const double* sum, const double* squares, std::int64_t positives,
                                double rho, double sigma) const {
    rg::QueryGeometry geometry = main;
    geometry.positive = positive;
    return mean_radii(geometry, e, g, k, dot, norm2, n, sum, squares, positives, rho, sigma).pair_b;
  }

  // D per pair: max(R_B, R_D) for the candidates, R_B for the other negatives; Recall@k
  // within the k-th smallest.
  LevelSetRadii pair_radii(rguard::Certificate& c, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                           std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2, std::int64_t n,
                           const double* sum, const double* squares, std::int64_t positives, double sigma,
                           const double* level_state) const {
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
    std::vector<double> pair = pairs_for(positive, main, e, g, k, dot, norm2, n, sum, squares, positives, c.rho, sigma);
    const double* ep = e + positive * k;
    for (const auto& candidate : pairs) {
      const auto at = std::lower_bound(main.negatives.begin(), main.negatives.end(), candidate.negative);
      if (at == main.negatives.end() || *at != candidate.negative) continue;
      const double* en = e + candidate.negative * k;
      double c2 = 0;
      for (std::int64_t d = 0; d < k; ++d) c2 += (ep[d] - en[d]) * (ep[d] - en[d]);
      const double threshold = (norm2[positive] - norm2[candidate.negative]) / (2 * std::sqrt(c2));
      const double radius = rg::level_set_radius(
          -1.0, candidate.levels, rg::level_probabilities(candidate.counts, n, per_level_alpha()), threshold, sigma);
      auto& slot = pair[static_cast<std::size_t>(at - main.negatives.begin())];
      slot = std::max(slot, radius);
    }
    LevelSetRadii out;
    for (std::int64_t r = 1; r <= ranks_; ++r) out.rank.push_back(kth_smallest(pair, static_cast<std::size_t>(r)));
    return out;
  }

  // D on the margin: R_D of V_k for each k; with a pool, also at most the smallest R_B of
  // the negatives outside it.
  LevelSetRadii margin_radii(rguard::Certificate& c, const rg::QueryGeometry& main, const double* e, std::int64_t g,
                             std::int64_t k, const std::vector<double>& dot, const std::vector<double>& norm2,
                             std::int64_t n, const double* sum, const double* squares, std::int64_t positives,
                             double sigma, const double* level_state) const {
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
      const auto pair = pairs_for(m.positive, main, e, g, k, dot, norm2, n, sum, squares, positives, c.rho, sigma);
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
                                                 rg::level_probabilities(m.counts[static_cast<std::size_t>(r)], m.counted, per_level_alpha()),
                                                 0.0, sigma);
      out.rank.push_back(std::min(radius, outside));
    }
    return out;
  }

  rguard::SamplingPlan plan_;
  double alpha_;
  std::string choice_;
  std::string bound_;
  bool margin_;
  std::int64_t candidates_, levels_;
  bool grid_;
  std::int64_t pool_, every_, ranks_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Certifier, "retrievalguard", "2.0",
              "RetrievalGuard certified l2 radii A, B, C, level sets D, and certified Recall@K for smoothed retrieval",
              RetrievalGuard, rguard::retrievalguard::schema())
