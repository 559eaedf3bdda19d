#include "geometry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "rguard/concentration.hpp"
#include "rguard/normal.hpp"

namespace rguard::retrievalguard {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

void set_directional_deviations(QueryGeometry& g, const double* gallery, std::int64_t rows, std::int64_t dim,
                                const std::vector<double>& covariance, std::int64_t n, std::int64_t positives,
                                double alpha, std::vector<double>& pair, std::vector<double>& item) {
  const auto negatives = static_cast<double>(g.negatives.size());
  const double directions = static_cast<double>(positives) * negatives + static_cast<double>(positives) + negatives;
  const double delta = alpha / std::max(1.0, directions);
  // quad[j] = e_j^T C e_j (the variance of <f, e_j>), cross[j] = e_p^T C e_j.
  std::vector<double> quad(static_cast<std::size_t>(rows)), cross(static_cast<std::size_t>(rows)), c_ep(static_cast<std::size_t>(dim));
  const double* ep = gallery + g.positive * dim;
  for (std::int64_t i = 0; i < dim; ++i) {
    double s = 0;
    for (std::int64_t j = 0; j < dim; ++j) s += covariance[static_cast<std::size_t>(i * dim + j)] * ep[j];
    c_ep[static_cast<std::size_t>(i)] = s;
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* e = gallery + r * dim;
    double q = 0, x = 0;
    for (std::int64_t i = 0; i < dim; ++i) {
      double row = 0;
      for (std::int64_t j = 0; j < dim; ++j) row += covariance[static_cast<std::size_t>(i * dim + j)] * e[j];
      q += e[i] * row;
      x += c_ep[static_cast<std::size_t>(i)] * e[i];
    }
    quad[static_cast<std::size_t>(r)] = q;
    cross[static_cast<std::size_t>(r)] = x;
  }
  item.assign(static_cast<std::size_t>(rows), kInf);
  for (std::int64_t r = 0; r < rows; ++r)
    item[static_cast<std::size_t>(r)] = empirical_bernstein_deviation(n, delta, quad[static_cast<std::size_t>(r)]);
  pair.assign(g.negatives.size(), kInf);
  const auto p = static_cast<std::size_t>(g.positive);
  for (std::size_t i = 0; i < g.negatives.size(); ++i) {
    const auto m = static_cast<std::size_t>(g.negatives[i]);
    const double c2 = g.norm2[p] + g.norm2[m] - 2.0 * g.gram_p[m];  // ||e_p - e_n||^2
    if (!(c2 > 1e-24)) continue;  // e_p == e_n: R_B is -inf there whatever the deviation
    pair[i] = empirical_bernstein_deviation(n, delta, (quad[p] - 2.0 * cross[m] + quad[m]) / c2);
  }
  g.pair_deviation = pair.data();
  g.item_deviation = item.data();
}

Radii certified_radii(const QueryGeometry& g, double rho, double sigma) {
  const std::int64_t p = g.positive;
  auto distance = [&](std::int64_t j) {
    return std::sqrt(std::max(0.0, g.f_norm2 - 2.0 * g.dot[j] + g.norm2[j]));
  };
  Radii r;
  r.d_pos = distance(p);
  r.d_neg = kInf;
  if (g.negatives.empty()) {  // nothing can be retrieved wrongly
    r.a = r.b = r.c = kInf;
    return r;
  }

  // B: for each negative n, with w = e_p - e_n, c = ||w||, t = (||e_p||^2 - ||e_n||^2)/(2c),
  // e_p stays nearer than e_n while <F(x'), w/c> > t. H(x) = (1 + <F(x), w/c>)/2 is the
  // smoothing of a [0,1]-valued function, so Phi^-1(H) is 1/sigma-Lipschitz (Salman et al.
  // 2019, Lemma 2), and H(x) >= 1/2 + (<F-hat, w/c> - rho)/2 on the event ||F-hat - F|| <= rho.
  const double f_norm = std::sqrt(g.f_norm2);
  auto pair_deviation = [&](std::size_t i) { return g.pair_deviation ? g.pair_deviation[i] : rho; };
  auto item_deviation = [&](std::int64_t j) { return g.item_deviation ? g.item_deviation[j] : rho; };
  double q_neg_max = -kInf;  // max over negatives of the upper bound on q_n
  r.b = kInf;
  r.b_deviation = rho;
  r.pair_b.assign(g.negatives.size(), kInf);
  for (std::size_t i = 0; i < g.negatives.size(); ++i) {
    const std::int64_t n = g.negatives[i];
    r.d_neg = std::min(r.d_neg, distance(n));
    q_neg_max = std::max(q_neg_max, 0.5 * (1.0 + g.dot[n] + item_deviation(n)));
    const double c = std::sqrt(std::max(0.0, g.norm2[p] + g.norm2[n] - 2.0 * g.gram_p[n]));
    if (!(c > 1e-12)) {  // e_p == e_n: a tie no radius can certify
      r.pair_b[i] = -kInf;
    } else {
      // |<F-hat, w/c>| <= ||F-hat|| exactly; clamp so cancellation cannot exceed it.
      const double projection = std::clamp((g.dot[p] - g.dot[n]) / c, -f_norm, f_norm);
      const double lower = 0.5 + 0.5 * (projection - pair_deviation(i));
      const double threshold = 0.5 + (g.norm2[p] - g.norm2[n]) / (4.0 * c);
      r.pair_b[i] = threshold <= 0.0 ? kInf : sigma * (normal_quantile(lower) - normal_quantile(threshold));
    }
    if (r.pair_b[i] < r.b) {
      r.b = r.pair_b[i];
      r.b_deviation = pair_deviation(i);
    }
  }

  // A: ||F(x) - F(x')|| <= sqrt(2/pi)/sigma ||x - x'|| (the smoothing of any unit-ball valued f).
  r.a = sigma * std::sqrt(M_PI / 2.0) * ((r.d_neg - rho) - (r.d_pos + rho)) / 2.0;

  // C: q_j = (1 + <F, e_j>)/2 are smoothings of [0,1]-valued functions for a unit gallery;
  // Phi^-1(q_p) falls and Phi^-1(q_n) rises by at most r/sigma each.
  const double q_pos = 0.5 * (1.0 + g.dot[p] - item_deviation(p));
  r.c = 0.5 * sigma * (normal_quantile(q_pos) - normal_quantile(q_neg_max));
  return r;
}

}  // namespace rguard::retrievalguard
