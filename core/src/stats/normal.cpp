#include "rguard/normal.hpp"

#include <boost/math/distributions/normal.hpp>
#include <cmath>
#include <limits>

namespace rguard {

namespace {
namespace policies = boost::math::policies;
// Domain and overflow errors give NaN and +-inf instead of throwing: the edges the callers
// rely on (Phi^-1(0) = -inf, Phi^-1(1) = +inf, Phi(+-inf)) are handled below before Boost is
// called, so these only back that up. promote_double stays at its default (on): Boost then
// evaluates in long double, the setting its accuracy tables for double were measured with.
using Policy = policies::policy<policies::domain_error<policies::ignore_error>,
                                policies::overflow_error<policies::ignore_error>>;
using Standard = boost::math::normal_distribution<double, Policy>;  // N(0, 1) by default
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

// Boost: erfc(-x / sqrt 2) / 2, which keeps full relative precision where Phi is tiny.
// Boost 1.74's tables (GNU C++ 7.1, double) give erfc within 0.98 eps; the rounding of
// x / sqrt 2 adds about x^2 eps relative in the lower tail (Phi's own condition number),
// 1e-13 at x = -30 (docs/certificates.md, "Floating point").
double normal_cdf(double x) {
  if (std::isnan(x)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(x)) return x < 0 ? 0.0 : 1.0;
  return boost::math::cdf(Standard(), x);
}

// Boost: -sqrt 2 erfc^-1(2p); erfc^-1 is correctly rounded on Boost 1.74's double test data
// and within 1.62 eps at its extreme arguments (long double). Near p = 1 the limit is 1 - p
// in double precision, not the function.
double normal_quantile(double p) {
  if (std::isnan(p)) return std::numeric_limits<double>::quiet_NaN();
  if (p <= 0.0) return -kInf;
  if (p >= 1.0) return kInf;
  if (p == 0.5) return 0.0;  // exactly, not -0 from -sqrt 2 * 0
  return boost::math::quantile(Standard(), p);
}

}  // namespace rguard
