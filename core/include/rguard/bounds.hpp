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
};

struct Radii {
  double d_pos = 0, d_neg = 0;  // ||F-hat - e_p*||, min over negatives
  double a = 0, b = 0, c = 0;   // radius <= 0 means abstain
};

// R_A: global Lipschitz bound sqrt(2/pi)/sigma of F.
// R_B: per-pair Phi^-1 bound (Salman et al. 2019) on direction w_n = e_p - e_n, general
//      gallery norms.
// R_C: Cohen-style two-sided bound on q_j = (1 + <F, e_j>)/2 (requires a unit gallery).
Radii certified_radii(const QueryGeometry& geometry, double rho, double sigma);

// The smallest k with P(Binomial(n, p) > k) <= tail: how many failures of independent
// events of probability p are still plausible (soundness audit).
std::int64_t binomial_upper_quantile(std::int64_t n, double p, double tail);

}  // namespace rguard
