#include "rguard/normal.hpp"

#include <cmath>
#include <limits>

namespace rguard {

// Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps full relative precision where Phi is tiny.
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

namespace {

// Lower-tail quantile for 0 < p <= 0.5. Start from Abramowitz & Stegun 26.2.23
// (|error| < 4.5e-4), then Halley steps on Phi(x) - p, which converge cubically and use
// the tail-accurate normal_cdf, so the result is good to a few ulps, tails included.
double lower_quantile(double p) {
  const double t = std::sqrt(-2.0 * std::log(p));
  double x = -(t - (2.515517 + t * (0.802853 + t * 0.010328)) /
                       (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))));
  for (int i = 0; i < 4; ++i) {
    const double density = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    if (density == 0.0) break;
    const double u = (normal_cdf(x) - p) / density;  // Newton step
    const double step = u / (1.0 + 0.5 * x * u);      // Halley correction
    x -= step;
    if (std::abs(step) <= 1e-17 * std::abs(x)) break;
  }
  return x;
}

}  // namespace

double normal_quantile(double p) {
  if (std::isnan(p)) return std::numeric_limits<double>::quiet_NaN();
  if (p <= 0.0) return -std::numeric_limits<double>::infinity();
  if (p >= 1.0) return std::numeric_limits<double>::infinity();
  if (p == 0.5) return 0.0;
  return p < 0.5 ? lower_quantile(p) : -lower_quantile(1.0 - p);
}

}  // namespace rguard
