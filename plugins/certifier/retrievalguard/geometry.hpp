// The geometry of RetrievalGuard's mean-based radii A, B and C (product.md section 2; proofs
// in docs/certificates.md): pure functions of F-hat, the gallery and a deviation bound.
#pragma once

#include <cstdint>
#include <vector>

namespace rguard::retrievalguard {

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
  // R_B of each pair (p*, n), parallel to `negatives`: e_p* stays nearer than e_n within it.
  std::vector<double> pair_b;
};

// R_A: global Lipschitz bound sqrt(2/pi)/sigma of F (needs rho: -inf when rho is +inf).
// R_B: per-pair Phi^-1 bound (Salman et al. 2019) on direction w_n = e_p - e_n, general
//      gallery norms.
// R_C: Cohen-style two-sided bound on q_j = (1 + <F, e_j>)/2 (requires a unit gallery).
// B and C use the geometry's directional deviations where it has them, rho otherwise.
// R_B = min over negatives of the pair radii (Radii::pair_b).
Radii certified_radii(const QueryGeometry& geometry, double rho, double sigma);


}  // namespace rguard::retrievalguard
