#include "rguard/sequential.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "rguard/error.hpp"

namespace rguard {

int SequentialSchedule::look_at(std::int64_t samples) const {
  const auto it = std::lower_bound(sizes.begin(), sizes.end(), samples);
  return it != sizes.end() && *it == samples ? static_cast<int>(it - sizes.begin()) : -1;
}

SequentialSchedule geometric_schedule(std::int64_t first, double growth, std::int64_t n, double alpha,
                                      double final_share, std::int64_t max_step) {
  if (first < 1 || n < first)
    throw Error(fmt::format("sequential schedule: the first look at {} samples must be in [1, n = {}]", first, n));
  if (!(growth > 1.0) || !std::isfinite(growth))
    throw Error(fmt::format("sequential schedule: growth {} must be a finite number above 1", growth));
  if (!(alpha > 0.0 && alpha < 1.0)) throw Error(fmt::format("sequential schedule: alpha {} must be in (0, 1)", alpha));
  if (!(final_share > 0.0 && final_share <= 1.0))
    throw Error(fmt::format("sequential schedule: final_share {} must be in (0, 1]", final_share));
  if (max_step < 0) throw Error(fmt::format("sequential schedule: max_step {} must be >= 0 (0: no cap)", max_step));
  SequentialSchedule s;
  const double merge = std::sqrt(growth);
  const double cap = static_cast<double>(max_step), last = static_cast<double>(n);
  bool arithmetic = false;  // past the cap: a look every max_step samples, none within half a step of n
  for (double size = static_cast<double>(first); arithmetic ? size + cap / 2 < last : size * merge < last;) {
    const auto look = static_cast<std::int64_t>(std::ceil(size));
    if (look >= n) break;  // a size just below n rounds up to the look at n, which comes last
    if (s.sizes.empty() || look > s.sizes.back()) s.sizes.push_back(look);
    arithmetic = max_step > 0 && size * (growth - 1.0) > cap;
    size = arithmetic ? size + cap : size * growth;
  }
  s.sizes.push_back(n);
  const bool single = s.sizes.size() == 1;
  // The early looks share their part in proportion to their samples: the queries that stop
  // with a certificate mostly stop at the later looks (docs/performance.md measures it),
  // and a deviation at m samples shrinks with m far faster than with log(1/alpha_r).
  double early_samples = 0;
  for (std::size_t r = 0; r + 1 < s.sizes.size(); ++r) early_samples += static_cast<double>(s.sizes[r]);
  // Each share is rounded down by a few ulps so that the rounded alphas cannot sum above
  // alpha: a sum of R doubles is within R eps of its exact value.
  const double slack = 1.0 - 4.0 * static_cast<double>(s.sizes.size()) * std::numeric_limits<double>::epsilon();
  for (std::size_t r = 0; r + 1 < s.sizes.size(); ++r)
    s.alphas.push_back(alpha * (1.0 - final_share) * (static_cast<double>(s.sizes[r]) / early_samples) * slack);
  s.alphas.push_back(single ? alpha : alpha * final_share * slack);
  return s;
}

}  // namespace rguard
