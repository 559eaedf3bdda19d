#include "level_sets.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "rguard/concentration.hpp"
#include "rguard/normal.hpp"

namespace rguard::retrievalguard {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

namespace {
// The bound at `shift` from q_i = Phi^-1(p_i) (+-inf for p_i = 1 or 0), summed from the
// top level down so small terms are not lost.
double lower_mean_from_quantiles(double floor, const std::vector<double>& levels, const std::vector<double>& q,
                                 double shift) {
  double sum = 0;
  for (std::size_t i = levels.size(); i-- > 0;) {
    const double below = i == 0 ? floor : levels[i - 1];
    sum += (levels[i] - below) * normal_cdf(q[i] - shift);
  }
  return floor + sum;
}

std::vector<double> quantiles(const std::vector<double>& p) {
  std::vector<double> q(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) q[i] = p[i] <= 0 ? -kInf : p[i] >= 1 ? kInf : normal_quantile(p[i]);
  return q;
}
}  // namespace

double level_set_lower_mean(double floor, const std::vector<double>& levels, const std::vector<double>& p, double shift) {
  // Salman et al.'s lemma on each level-set indicator: Phi^-1(P_{x'}(S >= t)) falls by at
  // most ||x' - x|| / sigma.
  return lower_mean_from_quantiles(floor, levels, quantiles(p), shift);
}

double level_set_radius(double floor, const std::vector<double>& levels, const std::vector<double>& p, double threshold,
                        double sigma) {
  // "Exceeds" keeps a margin of 1e-12 over the threshold: rounding in the sum cannot
  // certify a pair that is exactly tied.
  const double needed = threshold + 1e-12;
  const std::vector<double> q = quantiles(p);
  if (!(lower_mean_from_quantiles(floor, levels, q, 0.0) > needed)) return 0.0;
  // As r grows the terms with p_i < 1 vanish; those with p_i = 1 (exact probabilities, in
  // tests) stay: if they alone exceed the threshold, every radius is certified.
  double limit = floor, top = -kInf;
  for (std::size_t i = 0; i < q.size(); ++i) {
    if (std::isinf(q[i]) && q[i] > 0) limit += levels[i] - (i == 0 ? floor : levels[i - 1]);
    else if (std::isfinite(q[i])) top = std::max(top, q[i]);
  }
  if (limit > needed) return kInf;
  double lo = 0.0, hi = sigma * ((std::isfinite(top) ? top : 0.0) + 40.0);
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (lower_mean_from_quantiles(floor, levels, q, mid / sigma) > needed ? lo : hi) = mid;
  }
  return lo;
}

std::vector<double> level_probabilities(const std::vector<double>& counts, std::int64_t n, double alpha_each) {
  // The same (count, n, alpha) recurs across levels and queries: remember each bound.
  thread_local std::map<std::tuple<std::int64_t, std::int64_t, double>, double> known;
  if (known.size() > 100000) known.clear();
  std::vector<double> p(counts.size());
  double previous = 1.0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const auto key = std::make_tuple(static_cast<std::int64_t>(counts[i]), n, alpha_each);
    auto it = known.find(key);
    if (it == known.end()) it = known.emplace(key, clopper_pearson_lower(std::get<0>(key), n, alpha_each)).first;
    p[i] = std::min(previous, it->second);
    previous = p[i];
  }
  return p;
}

std::vector<double> level_upper_probabilities(const std::vector<double>& counts, std::int64_t n, double alpha_each) {
  // P(S >= t_i) <= 1 - CP lower of the failures: the upper bound at alpha_each.
  std::vector<double> p(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i)
    p[i] = 1.0 - clopper_pearson_lower(n - static_cast<std::int64_t>(counts[i]), n, alpha_each);
  for (std::size_t i = 1; i < p.size(); ++i) p[i] = std::min(p[i], p[i - 1]);
  return p;
}

std::vector<double> projected_counts(const std::vector<double>& counts, std::int64_t count, const std::vector<double>& upper,
                                     double carried, std::int64_t final_count) {
  std::vector<double> projected(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double estimate = counts[i] / static_cast<double>(count);
    projected[i] = std::round(std::min(1.0, estimate + carried * (upper[i] - estimate)) * static_cast<double>(final_count));
  }
  return projected;
}

std::vector<double> counts_from_bins(const double* bins, std::int64_t levels) {
  std::vector<double> counts(static_cast<std::size_t>(levels), 0.0);
  double above = 0;
  for (std::int64_t b = levels; b >= 1; --b) {
    above += bins[b];
    counts[static_cast<std::size_t>(b - 1)] = above;
  }
  return counts;
}

std::int64_t levels_below(const double* levels, std::int64_t count, double s, double margin) {
  return std::upper_bound(levels, levels + count, s - margin) - levels;
}

}  // namespace rguard::retrievalguard
