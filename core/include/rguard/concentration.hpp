// Concentration inequalities and confidence bounds used by certificates and the soundness
// audit: general statistics, no retrieval geometry (that lives beside its certifier,
// plugins/certifier/retrievalguard). Proofs and references in docs/certificates.md. Each
// bound is rounded to its safe side by more than its floating-point error: radii up, the
// Clopper-Pearson bound down (docs/certificates.md, "Floating point").
#pragma once

#include <cstdint>

namespace rguard {

// rho = (1 + sqrt(2 ln(1/alpha))) / sqrt(n): with probability >= 1 - alpha,
// ||F-hat - F|| <= rho for f with values in the unit ball (McDiarmid on the norm).
double mcdiarmid_radius(std::int64_t n, double alpha);

// Variance-adaptive rho: with probability >= 1 - alpha, ||F-hat - F|| <= this, for f with
// values in the unit ball. Bernstein's inequality in Hilbert space (Pinelis 1994) with the
// variance E||f - F||^2 <= 1 - ||F||^2, where ||F|| is bounded below from ||F-hat|| on the
// same event (proof: docs/certificates.md). About sqrt(1 - ||F||^2) times rho above: far
// smaller when the noisy embeddings stay close together; smaller whatever ||F-hat|| once
// n >= 47 at alpha = 1e-3 (n >= 290 at alpha = 1e-9).
double bernstein_radius(std::int64_t n, double alpha, double f_hat_norm);

// Lemma 1'' (Maurer & Pontil 2009, Theorem 4, applied to (1 - <f, u>)/2 in [0, 1]): for one
// unit direction u fixed before sampling, with probability >= 1 - delta,
// <F, u> >= <F-hat, u> - this, where `variance` is the unbiased sample variance of
// <f_i, u> over the n >= 2 samples (docs/certificates.md). +inf for n < 2.
double empirical_bernstein_deviation(std::int64_t n, double delta, double variance);

// One-sided Clopper-Pearson: the p with P(Binomial(n, p) >= k) = alpha, i.e. the alpha
// quantile of Beta(k, n - k + 1) (Boost.Math), moved down a little so that it is never above
// the exact value; alpha^(1/n) (moved down alike) for k >= n; 0 for k = 0, n <= 0, or alpha
// outside (0, 1). With probability >= 1 - alpha the true success probability is >= this
// (Clopper & Pearson 1934).
double clopper_pearson_lower(std::int64_t k, std::int64_t n, double alpha);

// The regularised incomplete beta function I_x(a, b) (a, b > 0, x in [0, 1]): Boost.Math's ibeta.
double incomplete_beta(double a, double b, double x);

// The smallest k with P(Binomial(n, p) > k) <= tail: how many failures of independent
// events of probability p are still plausible (soundness audit).
std::int64_t binomial_upper_quantile(std::int64_t n, double p, double tail);

}  // namespace rguard
