// What the selection samples of one query decide before its main samples are drawn: p*,
// the positive nearest to their mean, and the negatives most at risk of overtaking it.
#pragma once

#include <cstdint>
#include <vector>

namespace rguard::retrievalguard {

// One negative n against p*, in the units of the pair's direction u = (e_p - e_n)/c:
// Z = <f, u>, and e_p stays nearer than e_n while E Z > threshold.
struct RankedNegative {
  std::int64_t row = -1;
  double c = 0;          // ||e_p - e_n||
  double threshold = 0;  // (||e_p||^2 - ||e_n||^2) / (2c)
  double mean = 0;       // selection mean of Z
  double spread = 0;     // selection standard deviation of Z (0 beyond the shortlist)
  double risk() const { return mean - threshold - 3 * spread; }
};

struct Selection {
  std::int64_t positive = -1;           // -1: the query has no positive
  std::vector<RankedNegative> ranked;   // every negative but exact ties, most at risk first
  double floor = 0;                     // min over negatives of -c - c threshold: the margin's lower end
};

// `gallery`: unit rows in double [rows x dim]; `samples`: the n selection samples' unit
// embeddings [n x dim]. The `shortlist` negatives with the smallest selection margin get a
// spread and are ordered by risk (margin minus three spreads); the rest follow by margin.
Selection select_from_samples(const double* gallery, const std::int64_t* labels, std::int64_t rows, std::int64_t dim,
                              std::int64_t label, std::int64_t self, const double* samples, std::int64_t n,
                              std::int64_t shortlist);

// K levels evenly over [lo, hi] (clipped to (floor, ceiling)).
std::vector<double> even_levels(double lo, double hi, double floor, double ceiling, std::int64_t count);

}  // namespace rguard::retrievalguard
