#include "rguard/bounds.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "rguard/normal.hpp"

namespace rguard {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

double mcdiarmid_radius(std::int64_t n, double alpha) {
  return (1.0 + std::sqrt(2.0 * std::log(1.0 / alpha))) / std::sqrt(static_cast<double>(n));
}

namespace {

// t(v) solves 2 exp(-r^2 / (2 (n v + a r / 3))) = alpha for t = r / n, a = 2: Pinelis's
// Bernstein inequality for sum_i (f_i - F), ||f_i - F|| <= a, E||f_i - F||^2 <= v.
double bernstein_deviation(double n, double alpha, double v) {
  const double log_term = std::log(2.0 / alpha);
  const double linear = 2.0 * log_term / (3.0 * n);
  return linear + std::sqrt(linear * linear + 2.0 * v * log_term / n);
}

}  // namespace

double bernstein_radius(std::int64_t n, double alpha, double f_hat_norm) {
  const auto count = static_cast<double>(n);
  const double norm = std::clamp(f_hat_norm, 0.0, 1.0);
  auto t = [&](double v) { return bernstein_deviation(count, alpha, v); };
  // On the event, ||F|| >= ||F-hat|| - t(v_F), so v_F = 1 - ||F||^2 satisfies v <= g(v) =
  // 1 - (||F-hat|| - t(v))_+^2, and rho = t(v*) with v* the largest such v in [0, 1].
  if (t(1.0) >= norm) return t(1.0);  // g(1) = 1: nothing excludes v = 1
  // h(v) = g(v) - v is concave on [0, 1] with h(0) >= 0 > h(1): {h >= 0} = [0, v*].
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double gap = norm - t(mid);
    (1.0 - gap * gap - mid >= 0.0 ? lo : hi) = mid;
  }
  return t(hi);  // hi >= v*: rounds the radius up, never down
}

double empirical_bernstein_deviation(std::int64_t n, double delta, double variance) {
  if (n < 2) return kInf;
  // Maurer & Pontil (2009), Theorem 4, for Z = (1 - <f, u>)/2 in [0, 1], whose sample
  // variance is variance / 4: E Z <= mean Z + sqrt(2 V_n(Z) L / n) + 7 L / (3 (n - 1)),
  // L = ln(2 / delta). On the <f, u> scale (twice Z's) that is the deviation below.
  const double count = static_cast<double>(n);
  const double log_term = std::log(2.0 / delta);
  return std::sqrt(2.0 * std::max(0.0, variance) * log_term / count) + 14.0 * log_term / (3.0 * (count - 1.0));
}

std::vector<double> sample_covariance(std::int64_t n, std::int64_t dim, const double* sum, const double* sum_squares) {
  const auto k = static_cast<std::size_t>(dim);
  std::vector<double> c(k * k);
  const double count = static_cast<double>(n);
  std::size_t packed = 0;
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = i; j < k; ++j, ++packed)
      c[i * k + j] = c[j * k + i] = (sum_squares[packed] - sum[i] * sum[j] / count) / (count - 1.0);
  return c;
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
  double b = kInf;
  double lowest_at_half = kInf;  // min of `lower` over negatives whose threshold is 1/2
  double deviation_at_half = rho, deviation_b = rho;
  double q_neg_max = -kInf;      // max over negatives of the upper bound on q_n
  for (std::size_t i = 0; i < g.negatives.size(); ++i) {
    const std::int64_t n = g.negatives[i];
    r.d_neg = std::min(r.d_neg, distance(n));
    q_neg_max = std::max(q_neg_max, 0.5 * (1.0 + g.dot[n] + item_deviation(n)));
    const double c = std::sqrt(std::max(0.0, g.norm2[p] + g.norm2[n] - 2.0 * g.gram_p[n]));
    if (!(c > 1e-12)) {  // e_p == e_n: a tie no radius can certify
      b = -kInf;
      continue;
    }
    // |<F-hat, w/c>| <= ||F-hat|| exactly; clamp so cancellation cannot exceed it.
    const double projection = std::clamp((g.dot[p] - g.dot[n]) / c, -f_norm, f_norm);
    const double lower = 0.5 + 0.5 * (projection - pair_deviation(i));
    const double threshold = 0.5 + (g.norm2[p] - g.norm2[n]) / (4.0 * c);
    if (threshold == 0.5) {  // equal norms (a unit gallery): Phi^-1 is monotone, take it once
      if (lower < lowest_at_half) {
        lowest_at_half = lower;
        deviation_at_half = pair_deviation(i);
      }
      continue;
    }
    const double term = threshold <= 0.0 ? kInf : normal_quantile(lower) - normal_quantile(threshold);
    if (term < b) {
      b = term;
      deviation_b = pair_deviation(i);
    }
  }
  if (lowest_at_half < kInf) {
    const double term = normal_quantile(lowest_at_half) - normal_quantile(0.5);
    if (term <= b) {
      b = term;
      deviation_b = deviation_at_half;
    }
  }
  r.b = sigma * b;
  r.b_deviation = deviation_b;

  // A: ||F(x) - F(x')|| <= sqrt(2/pi)/sigma ||x - x'|| (the smoothing of any unit-ball valued f).
  r.a = sigma * std::sqrt(M_PI / 2.0) * ((r.d_neg - rho) - (r.d_pos + rho)) / 2.0;

  // C: q_j = (1 + <F, e_j>)/2 are smoothings of [0,1]-valued functions for a unit gallery;
  // Phi^-1(q_p) falls and Phi^-1(q_n) rises by at most r/sigma each.
  const double q_pos = 0.5 * (1.0 + g.dot[p] - item_deviation(p));
  r.c = 0.5 * sigma * (normal_quantile(q_pos) - normal_quantile(q_neg_max));
  return r;
}

std::int64_t binomial_upper_quantile(std::int64_t n, double p, double tail) {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  // Sum the pmf from k = 0 up, in log space (lgamma), until the remaining mass <= tail.
  const double log_p = std::log(p), log_q = std::log1p(-p);
  double cumulative = 0;
  for (std::int64_t k = 0; k <= n; ++k) {
    const double log_pmf = std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(k) + 1) -
                           std::lgamma(static_cast<double>(n - k) + 1) + static_cast<double>(k) * log_p +
                           static_cast<double>(n - k) * log_q;
    cumulative += std::exp(log_pmf);
    if (1.0 - cumulative <= tail) return k;
  }
  return n;
}

}  // namespace rguard
