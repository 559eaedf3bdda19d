#include "rguard/concentration.hpp"

#include <algorithm>
#include <boost/math/distributions/binomial.hpp>
#include <boost/math/special_functions/beta.hpp>
#include <boost/math/tools/toms748_solve.hpp>
#include <cmath>
#include <limits>

namespace rguard {

namespace {
namespace policies = boost::math::policies;
// Domain and overflow errors give NaN and +-inf instead of throwing; the edges (k = 0, k = n,
// x at 0 or 1, alpha outside (0, 1)) are handled before Boost is called. An iteration that
// does not converge still throws (evaluation_error), caught only where a fallback follows.
// promote_double stays on (the default): Boost's tables for double were measured with it.
using Policy = policies::policy<policies::domain_error<policies::ignore_error>,
                                policies::overflow_error<policies::ignore_error>>;
using Binomial = boost::math::binomial_distribution<double, Policy>;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = std::numeric_limits<double>::epsilon();  // 2^-52
// How far a Clopper-Pearson quantile is moved down before it is checked (below).
constexpr double kInverseSlack = 64 * kEps;
// How far a radius rho is moved up: 16 eps, against under 5 eps of rounding (each function's
// comment counts it) in formulas of positive terms, where relative errors only add.
constexpr double kRadiusSlack = 16 * kEps;

// x moved down by `relative` (up to the product's own rounding, half an ulp) and by at
// least one representable step, so a bound never stays where it was.
double lowered(double x, double relative) { return std::min(x * (1.0 - relative), std::nextafter(x, 0.0)); }
double raised(double x, double relative) { return std::max(x * (1.0 + relative), std::nextafter(x, kInf)); }

// ln(1/alpha) and ln(2/alpha) from the exact input alpha: one log (glibc: within 1 ulp on
// x86-64) and, for the second, a sum of two positive terms. Forming 1/alpha first would
// add its rounding, amplified by 1/ln(1/alpha) for alpha near 1.
double log_inverse(double alpha) { return -std::log(alpha); }
double log_two_over(double alpha) { return std::log(2.0) - std::log(alpha); }
}  // namespace

double mcdiarmid_radius(std::int64_t n, double alpha) {
  // One log (1 ulp), halved by the sqrt, and four rounded operations: under 3 ulps.
  const double rho = (1.0 + std::sqrt(2.0 * log_inverse(alpha))) / std::sqrt(static_cast<double>(n));
  return raised(rho, kRadiusSlack);
}

namespace {

// t(v) solves 2 exp(-r^2 / (2 (n v + a r / 3))) = alpha for t = r / n, a = 2: Pinelis's
// Bernstein inequality for sum_i (f_i - F), ||f_i - F|| <= a, E||f_i - F||^2 <= v.
// The logs (1.5 ulps) and six rounded operations: under 5 ulps.
double bernstein_deviation(double n, double alpha, double v) {
  const double log_term = log_two_over(alpha);
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
  if (t(1.0) >= norm) return raised(t(1.0), kRadiusSlack);  // g(1) = 1: nothing excludes v = 1
  // h(v) = g(v) - v is concave on [0, 1] with h(0) >= 0 > h(1): {h >= 0} = [0, v*]. Here
  // 0 < gap <= 1, so the computed h is within a few eps (about 2e-15) of h: a point counts
  // as outside only when it is below -1e-14, so hi stays above v* whatever the rounding.
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double gap = norm - t(mid);
    (1.0 - gap * gap - mid >= -1e-14 ? lo : hi) = mid;
  }
  return raised(t(hi), kRadiusSlack);  // t is increasing: hi >= v* rounds the radius up
}

double empirical_bernstein_deviation(std::int64_t n, double delta, double variance) {
  if (n < 2) return kInf;
  // Maurer & Pontil (2009), Theorem 4, for Z = (1 - <f, u>)/2 in [0, 1], whose sample
  // variance is variance / 4: E Z <= mean Z + sqrt(2 V_n(Z) L / n) + 7 L / (3 (n - 1)),
  // L = ln(2 / delta). On the <f, u> scale (twice Z's) that is the deviation below.
  // L (1.5 ulps) and eight rounded operations on positive terms: under 5 ulps.
  const double count = static_cast<double>(n);
  const double log_term = log_two_over(delta);
  const double deviation =
      std::sqrt(2.0 * std::max(0.0, variance) * log_term / count) + 14.0 * log_term / (3.0 * (count - 1.0));
  return raised(deviation, kRadiusSlack);
}

double incomplete_beta(double a, double b, double x) {
  if (std::isnan(x)) return std::numeric_limits<double>::quiet_NaN();
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  return boost::math::ibeta(a, b, x, Policy());  // NaN for a or b < 0 (the policy)
}

double clopper_pearson_lower(std::int64_t k, std::int64_t n, double alpha) {
  // 0 bounds every probability from below: the answer for no successes, no trials and an
  // alpha outside (0, 1) (NaN included), where there is no quantile to take.
  if (k <= 0 || n <= 0 || !(alpha > 0.0 && alpha < 1.0)) return 0.0;
  const std::int64_t successes = std::min(k, n);
  const auto a = static_cast<double>(successes), b = static_cast<double>(n - successes + 1);
  // x is accepted only if the forward function, whose error Boost states separately, agrees:
  // ibeta within 1.26 eps on Boost 1.74's double test data (large and diverse values). A
  // computed I_x(a, b) <= alpha (1 - 16 eps) means, with ibeta's error under 15 eps, that
  // the exact I_x(a, b) is <= alpha, i.e. x is at or below the exact bound.
  const double limit = alpha * (1.0 - 16 * kEps);
  auto excess = [&](double x) { return boost::math::ibeta(a, b, x, Policy()) - limit; };
  // The alpha quantile of Beta(k, n - k + 1). At k = n, Beta(n, 1)'s closed form alpha^(1/n)
  // (a log, a division and an exp: a few ulps). Otherwise Boost's Clopper-Pearson bound,
  // ibeta_inv(k, n - k + 1, alpha): within 11 eps on Boost 1.74's double test data, but
  // Boost 1.74 gives up at some extreme arguments (k = 10, n = 1e5, alpha = 1e-300) and
  // later versions return 2.3e-32 there, 500 times the bound (scipy 1.10.1's beta.ppf).
  double x = std::numeric_limits<double>::quiet_NaN();
  try {
    x = successes == n ? std::exp(std::log(alpha) / a)
                       : Binomial::find_lower_bound_on_p(static_cast<double>(n), a, alpha);
  } catch (const boost::math::evaluation_error&) {  // x stays NaN: solved below
  }
  if (x == 0.0) return 0.0;  // the bound underflows
  if (x > 0.0 && x <= 1.0) {
    // Down by kInverseSlack, several times the inverse's error: near the bound I_x moves
    // about as fast as x (relatively; k times faster for small x), so this usually passes.
    x = lowered(x, kInverseSlack);
    if (excess(x) <= 0.0) return x;
  } else {
    x = 1.0;  // I_1 = 1 > alpha
  }
  // The inverse was off by more than it states, or failed: the root of the forward function
  // in (0, x), where it is above alpha, by TOMS 748 (Alefeld, Potra & Shi 1995; Boost's
  // bracketing solver). Its lower end, moved down and checked like the inverse, is the bound.
  if (!(excess(x) > 0.0)) return 0.0;  // NaN from ibeta
  boost::uintmax_t iterations = 1000;
  x = boost::math::tools::toms748_solve(excess, 0.0, x, -limit, excess(x), boost::math::tools::eps_tolerance<double>(),
                                        iterations, Policy())
          .first;
  x = lowered(x, kInverseSlack);
  for (double step = kInverseSlack; !(excess(x) <= 0.0); step *= 2) {
    if (step > 0.25) return 0.0;
    x = lowered(x, step);
  }
  return x;
}

std::int64_t binomial_upper_quantile(std::int64_t n, double p, double tail) {
  if (n <= 0 || !(p > 0)) return 0;
  if (p >= 1) return n;
  // P(X > k), the complement of Boost's binomial cdf (an ibeta), is non-increasing in k:
  // bisect for the smallest k with P(X > k) <= tail. k = -1 stands for "none" (P = 1);
  // k = n has P = 0.
  const Binomial binomial(static_cast<double>(n), p);
  std::int64_t none = -1, found = n;
  while (found - none > 1) {
    const std::int64_t mid = none + (found - none) / 2;
    (boost::math::cdf(boost::math::complement(binomial, static_cast<double>(mid))) <= tail ? found : none) = mid;
  }
  return found;
}

}  // namespace rguard
