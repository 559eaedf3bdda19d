// One query's certificate: the smoothed 1-NN, p*, radii A, B and C on the mean's event, D
// (level_radii.cpp), the chosen radius and certified Recall@K (docs/certificates.md). With
// Look::optimistic() the same computation gives the stopping rule's projection instead.
#include <cmath>

#include "retrievalguard.hpp"
#include "rguard/concentration.hpp"
#include "rguard/statistics.hpp"

namespace rguard::retrievalguard {

// The gallery rows renormalised in double: the bounds assume unit vectors exactly.
const double* RetrievalGuard::unit_gallery(const rguard::GalleryView& gallery) const {
  if (gallery.unit) return gallery.unit;
  thread_local std::vector<double> local;
  local = rguard::unit_rows(gallery.embedding, gallery.size, gallery.dim);
  return local.data();
}

rguard::Certificate RetrievalGuard::certify_at(const rguard::QueryInfo& query, const rguard::GalleryView& gallery,
                               const rguard::QueryState& state, double sigma, const Look& look) const {
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
  auto rho_at = [&](std::int64_t samples, double alpha) {
    return bound_ == "bernstein"    ? rguard::bernstein_radius(samples, mean_alpha(alpha), c.f_norm)
           : bound_ == "mcdiarmid" ? rguard::mcdiarmid_radius(samples, mean_alpha(alpha))
                                   : kInf;
  };
  // Optimistic: the mean at final_n may sit the carried part of rho(now) nearer the
  // positives than F-hat, and final_n samples would leave rho(final_n): a negative
  // deviation (directional: the same per direction, below).
  c.rho = look.optimistic() && !directional()
              ? rho_at(look.final_n, look.final_alpha) - look.carried(n) * rho_at(n, look.alpha)
              : rho_at(n, look.alpha);
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
  const rg::Radii mean = mean_radii(geometry, e, g, k, dot, norm2, n, sum, squares, positives, c.rho, sigma, look);
  if (directional()) c.rho = mean.b_deviation;  // the deviation at the negative that bounds R_B
  c.d_pos = mean.d_pos;
  c.d_neg = mean.d_neg;
  c.radius_a = mean.a;
  c.radius_b = mean.b;
  c.radius_c = mean.c;

  LevelSetRadii d;
  if (level_sets()) {
    const double* level_state = state.main + k + (directional() ? rguard::packed_size(k) : 0);
    d = margin_ ? margin_radii(c, geometry, e, g, k, dot, norm2, n, sum, squares, positives, sigma, level_state, look)
                : pair_radii(c, geometry, e, g, k, dot, norm2, n, sum, squares, positives, sigma, level_state, look);
    if (!d.rank.empty()) c.radius_d = d.rank.front();
  }
  const double chosen = choice_ == "a"   ? c.radius_a
                        : choice_ == "b" ? c.radius_b
                        : choice_ == "c" ? c.radius_c
                        : choice_ == "d" ? c.radius_d
                                         : std::max({c.radius_a, c.radius_b, c.radius_c, c.radius_d});
  // Each positive radius implies F-hat is nearer a positive than every negative, so a
  // certified query is always correct; requiring it guards against rounding only.
  c.abstain = !(chosen > 0) || (!c.correct && !look.optimistic());  // optimistic: the 1-NN may still turn
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

// A, B and C for the geometry's p* (B per pair too), on the mean event.
rg::Radii RetrievalGuard::mean_radii(rg::QueryGeometry geometry, const double* e, std::int64_t g, std::int64_t k,
                     const std::vector<double>& dot, const std::vector<double>& norm2, std::int64_t n, const double* sum,
                     const double* squares, std::int64_t positives, double rho, double sigma, const Look& look) const {
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
  if (squares) {
    const auto covariance = rguard::sample_covariance(n, k, sum, squares);
    rg::set_directional_deviations(geometry, e, g, k, covariance, n, positives, mean_alpha(look.alpha), pair_deviation,
                                   item_deviation);
    if (look.optimistic()) {  // the deviation final_n samples would leave, less the carried part of this look's
      const double carried = look.carried(n);
      std::vector<double> pair_n, item_n;
      rg::set_directional_deviations(geometry, e, g, k, covariance, look.final_n, positives, mean_alpha(look.final_alpha),
                                     pair_n, item_n);
      for (std::size_t i = 0; i < pair_n.size(); ++i) pair_deviation[i] = pair_n[i] - carried * pair_deviation[i];
      for (std::size_t i = 0; i < item_n.size(); ++i) item_deviation[i] = item_n[i] - carried * item_deviation[i];
      geometry.pair_deviation = pair_deviation.data();  // the second call pointed them at pair_n, item_n
      geometry.item_deviation = item_deviation.data();
    }
  }
  return {rg::certified_radii(geometry, rho, sigma)};
}

}  // namespace rguard::retrievalguard
