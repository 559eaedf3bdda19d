// The certified radii of RetrievalGuard (product.md section 2; proofs in
// docs/certificates.md). Pure functions of the Monte-Carlo statistics: no torch.
#pragma once

#include <cstdint>
#include <vector>

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

// The unbiased sample covariance (S2 - S1 S1^T / n) / (n - 1) of one query's unit
// embeddings, as a row-major [dim x dim] matrix, from S1 = sum f and the packed upper
// triangle of S2 = sum f f^T (row by row: (0,0), (0,1), ..., (0,dim-1), (1,1), ...).
std::vector<double> sample_covariance(std::int64_t n, std::int64_t dim, const double* sum, const double* sum_squares);

// One query's geometry, all in double precision. `dot[j]` = <F-hat, e_j>,
// `norm2[j]` = ||e_j||^2; p = nearest positive to F-hat; the other rows that count are
// `negatives`. `gram_p[j]` = <e_p, e_j>.
struct QueryGeometry {
  double f_norm2 = 0;                  // ||F-hat||^2
  std::int64_t positive = -1;          // p*, the nearest positive (row index)
  std::vector<std::int64_t> negatives;
  const double* dot = nullptr;
  const double* norm2 = nullptr;
  const double* gram_p = nullptr;
  // The directional bound: deviations of <F, w_n / c_n> (parallel to `negatives`) and of
  // <F, e_j> (by row), all on one event; null: rho bounds every direction.
  const double* pair_deviation = nullptr;
  const double* item_deviation = nullptr;
};

// Fills the directional deviations of `geometry` (p* and negatives set; `gallery`: its unit
// rows, [rows x dim]) from the samples' covariance: one event of probability >= 1 - alpha
// for all |P||N| pair directions and |P| + |N| rows (a union bound; every direction is
// fixed by the gallery before sampling, so p* may still be chosen from the samples).
void set_directional_deviations(QueryGeometry& geometry, const double* gallery, std::int64_t rows, std::int64_t dim,
                                const std::vector<double>& covariance, std::int64_t n, std::int64_t positives,
                                double alpha, std::vector<double>& pair, std::vector<double>& item);

struct Radii {
  double d_pos = 0, d_neg = 0;  // ||F-hat - e_p*||, min over negatives
  double a = 0, b = 0, c = 0;   // radius <= 0 means abstain
  double b_deviation = 0;       // the deviation at the negative that bounds R_B (rho without directions)
};

// R_A: global Lipschitz bound sqrt(2/pi)/sigma of F (needs rho: -inf when rho is +inf).
// R_B: per-pair Phi^-1 bound (Salman et al. 2019) on direction w_n = e_p - e_n, general
//      gallery norms.
// R_C: Cohen-style two-sided bound on q_j = (1 + <F, e_j>)/2 (requires a unit gallery).
// B and C use the geometry's directional deviations where it has them, rho otherwise.
Radii certified_radii(const QueryGeometry& geometry, double rho, double sigma);

// The smallest k with P(Binomial(n, p) > k) <= tail: how many failures of independent
// events of probability p are still plausible (soundness audit).
std::int64_t binomial_upper_quantile(std::int64_t n, double p, double tail);

}  // namespace rguard
