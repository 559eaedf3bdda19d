// The level-set bound (Kumar, Levine, Feizi, Goldstein, "Certifying Confidence via
// Randomized Smoothing", NeurIPS 2020), for any statistic S(f(x + delta)) in [floor, 1]
// or [floor, 2]: with levels floor = t_0 < t_1 < ... < t_K and lower confidence bounds p_i
// of P(S >= t_i) at x, for every x' with ||x' - x|| <= r
//   E_{x'} S >= floor + sum_i (t_i - t_{i-1}) Phi(Phi^-1(p_i) - r/sigma)
// (Salman et al.'s lemma on each level-set indicator; Theorem D in docs/certificates.md).
#pragma once

#include <cstdint>
#include <vector>

namespace rguard::retrievalguard {

// The lower bound above at r / sigma = shift; levels ascending and above `floor`,
// p non-increasing in [0, 1].
double level_set_lower_mean(double floor, const std::vector<double>& levels, const std::vector<double>& p, double shift);

// The largest r >= 0 at which level_set_lower_mean exceeds `threshold`, to 1e-12 relative,
// rounded down; 0 when it does not exceed it even at r = 0.
double level_set_radius(double floor, const std::vector<double>& levels, const std::vector<double>& p, double threshold,
                        double sigma);

// Lower confidence bounds of P(S >= t_i) from counts[i] = #{samples with S >= t_i} out of
// n: one-sided Clopper-Pearson at `alpha_each` per level, made non-increasing in i (a
// smaller bound is still a lower bound, and P(S >= t) is non-increasing in t).
std::vector<double> level_probabilities(const std::vector<double>& counts, std::int64_t n, double alpha_each);

// For the stopping rule only: upper confidence bounds of the same probabilities (one-sided
// Clopper-Pearson upper at `alpha_each`, made non-increasing), what n samples could show at
// best. Not a certificate.
std::vector<double> level_upper_probabilities(const std::vector<double>& counts, std::int64_t n, double alpha_each);

// For the stopping rule only: the counts out of `final_count` that the level fractions
// counts[i] / count would give if each leaned by `carried` (in [0, 1]) of the way to its
// upper bound `upper[i]`, rounded to the nearest count. Nearest, not down: flooring made
// the projection on average half a count worse for the query than its median, and lost a
// count where no lean applied: (15 / 22) * 22 floors to 14 in floating point. Not a
// certificate.
std::vector<double> projected_counts(const std::vector<double>& counts, std::int64_t count, const std::vector<double>& upper,
                                     double carried, std::int64_t final_count);

// counts[i] = #{S >= t_{i+1}} from bins[b] = #{samples with exactly b levels at or below S}.
std::vector<double> counts_from_bins(const double* bins, std::int64_t levels);

// In how many of the ascending `levels` S exceeds by more than `margin` (rounding can then
// only lower the counts).
std::int64_t levels_below(const double* levels, std::int64_t count, double s, double margin);

}  // namespace rguard::retrievalguard
