// The standard normal distribution: CDF Phi and quantile Phi^-1 in double precision.
#pragma once

namespace rguard {

double normal_cdf(double x);  // Phi(x), full relative precision in the lower tail
// Phi^-1(p); -inf at p <= 0, +inf at p >= 1, NaN for NaN.
double normal_quantile(double p);

}  // namespace rguard
