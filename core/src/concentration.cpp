#include "rguard/concentration.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

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

// Lentz's continued fraction for I_x(a, b) (Numerical Recipes 6.4), valid for
// x < (a + 1) / (a + b + 2); the other side goes through the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
namespace {
double beta_fraction(double a, double b, double x) {
  constexpr double tiny = 1e-300, eps = 1e-16;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::abs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 100000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::abs(delta - 1.0) < eps) break;
  }
  return h;
}
}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * beta_fraction(a, b, x) / a;
  return 1.0 - std::exp(log_front) * beta_fraction(b, a, 1.0 - x) / b;
}

double clopper_pearson_lower(std::int64_t k, std::int64_t n, double alpha) {
  if (k <= 0) return 0.0;
  // k = n has the closed form alpha^(1/n) (the Beta(n, 1) quantile).
  if (k >= n) return std::exp(std::log(alpha) / static_cast<double>(n));
  const auto a = static_cast<double>(k), b = static_cast<double>(n - k + 1);
  const double log_beta = std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
  // Safeguarded Newton on I_p(a, b) = alpha (increasing in p), keeping a bracket with
  // I(lo) < alpha <= I(hi); then a point just below the root that provably has I < alpha.
  double lo = 0.0, hi = 1.0;
  double p = std::clamp(a / (a + b), 1e-300, 1.0 - 1e-16);
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double value = incomplete_beta(a, b, p) - alpha;
    (value < 0 ? lo : hi) = p;
    if (std::abs(value) <= 1e-14 * alpha) break;
    const double density = std::exp((a - 1) * std::log(p) + (b - 1) * std::log1p(-p) - log_beta);
    double next = p - value / density;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);  // outside the bracket (or NaN): bisect
    p = next;
  }
  double x = std::max(lo, std::min(p, hi) * (1.0 - 1e-12));
  while (x > lo && !(incomplete_beta(a, b, x) < alpha)) x = lo + 0.5 * (x - lo);
  return x;
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
