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
  double b = kInf;
  double lowest_at_half = kInf;  // min of `lower` over negatives whose threshold is 1/2
  double q_neg_max = -kInf;
  for (std::int64_t n : g.negatives) {
    r.d_neg = std::min(r.d_neg, distance(n));
    q_neg_max = std::max(q_neg_max, 0.5 * (1.0 + g.dot[n]));
    const double c = std::sqrt(std::max(0.0, g.norm2[p] + g.norm2[n] - 2.0 * g.gram_p[n]));
    if (!(c > 1e-12)) {  // e_p == e_n: a tie no radius can certify
      b = -kInf;
      continue;
    }
    // |<F-hat, w/c>| <= ||F-hat|| exactly; clamp so cancellation cannot exceed it.
    const double projection = std::clamp((g.dot[p] - g.dot[n]) / c, -f_norm, f_norm);
    const double lower = 0.5 + 0.5 * (projection - rho);
    const double threshold = 0.5 + (g.norm2[p] - g.norm2[n]) / (4.0 * c);
    if (threshold == 0.5) {  // equal norms (a unit gallery): Phi^-1 is monotone, take it once
      lowest_at_half = std::min(lowest_at_half, lower);
      continue;
    }
    const double term = threshold <= 0.0 ? kInf : normal_quantile(lower) - normal_quantile(threshold);
    b = std::min(b, term);
  }
  if (lowest_at_half < kInf) b = std::min(b, normal_quantile(lowest_at_half) - normal_quantile(0.5));
  r.b = sigma * b;

  // A: ||F(x) - F(x')|| <= sqrt(2/pi)/sigma ||x - x'|| (the smoothing of any unit-ball valued f).
  r.a = sigma * std::sqrt(M_PI / 2.0) * ((r.d_neg - rho) - (r.d_pos + rho)) / 2.0;

  // C: q_j = (1 + <F, e_j>)/2 are smoothings of [0,1]-valued functions for a unit gallery;
  // Phi^-1(q_p) falls and Phi^-1(q_n) rises by at most r/sigma each.
  const double q_pos = 0.5 * (1.0 + g.dot[p]);
  r.c = 0.5 * sigma * (normal_quantile(q_pos - 0.5 * rho) - normal_quantile(q_neg_max + 0.5 * rho));
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
