#include "selection.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "rguard/statistics.hpp"

namespace rguard::retrievalguard {

Selection select_from_samples(const double* gallery, const std::int64_t* labels, std::int64_t rows, std::int64_t dim,
                              std::int64_t label, std::int64_t self, const double* samples, std::int64_t n,
                              std::int64_t shortlist) {
  Selection out;
  const auto k = static_cast<std::size_t>(dim);
  std::vector<double> mean(k), sum(k), squares(static_cast<std::size_t>(packed_size(dim))), dot(static_cast<std::size_t>(rows)),
      norm2(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < n; ++i) {
    const double* f = samples + i * dim;
    std::size_t packed = 0;
    for (std::size_t a = 0; a < k; ++a) {
      sum[a] += f[a];
      for (std::size_t b = a; b < k; ++b) squares[packed++] += f[a] * f[b];
    }
  }
  for (std::size_t d = 0; d < k; ++d) mean[d] = sum[d] / static_cast<double>(n);
  double best = std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < rows; ++j) {
    const double* e = gallery + j * dim;
    double s = 0, e2 = 0;
    for (std::size_t d = 0; d < k; ++d) {
      s += e[d] * mean[d];
      e2 += e[d] * e[d];
    }
    dot[static_cast<std::size_t>(j)] = s;
    norm2[static_cast<std::size_t>(j)] = e2;
    if (j != self && labels[j] == label && e2 - 2 * s < best) {
      best = e2 - 2 * s;
      out.positive = j;
    }
  }
  if (out.positive < 0) return out;
  const auto p = static_cast<std::size_t>(out.positive);
  const double* ep = gallery + out.positive * dim;
  out.floor = 0;
  for (std::int64_t j = 0; j < rows; ++j) {
    if (j == self || labels[j] == label) continue;
    const double* e = gallery + j * dim;
    double gram = 0;
    for (std::size_t d = 0; d < k; ++d) gram += ep[d] * e[d];
    RankedNegative r;
    r.row = j;
    r.c = std::sqrt(std::max(0.0, norm2[p] + norm2[static_cast<std::size_t>(j)] - 2 * gram));
    if (!(r.c > 1e-12)) continue;  // a tie: B already abstains on it
    r.threshold = (norm2[p] - norm2[static_cast<std::size_t>(j)]) / (2 * r.c);
    r.mean = (dot[p] - dot[static_cast<std::size_t>(j)]) / r.c;
    out.floor = std::min(out.floor, -r.c - r.c * r.threshold);
    out.ranked.push_back(r);
  }
  auto by_margin = [](const RankedNegative& a, const RankedNegative& b) {
    const double ma = a.mean - a.threshold, mb = b.mean - b.threshold;
    return ma < mb || (ma == mb && a.row < b.row);
  };
  std::sort(out.ranked.begin(), out.ranked.end(), by_margin);
  // The shortlist's spreads from the selection covariance, then the shortlist by risk.
  const auto listed = std::min<std::size_t>(out.ranked.size(), static_cast<std::size_t>(shortlist));
  const std::vector<double> covariance = sample_covariance(n, dim, sum.data(), squares.data());
  std::vector<double> u(k);
  for (std::size_t i = 0; i < listed; ++i) {
    RankedNegative& r = out.ranked[i];
    const double* e = gallery + r.row * dim;
    for (std::size_t d = 0; d < k; ++d) u[d] = (ep[d] - e[d]) / r.c;
    double variance = 0;
    for (std::size_t a = 0; a < k; ++a) {
      double row = 0;
      for (std::size_t b = 0; b < k; ++b) row += covariance[a * k + b] * u[b];
      variance += u[a] * row;
    }
    r.spread = std::sqrt(std::max(variance, 0.0));
  }
  std::stable_sort(out.ranked.begin(), out.ranked.begin() + static_cast<std::ptrdiff_t>(listed),
                   [](const RankedNegative& a, const RankedNegative& b) { return a.risk() < b.risk(); });
  return out;
}

std::vector<double> even_levels(double lo, double hi, double floor, double ceiling, std::int64_t count) {
  const double room = 1e-9 * std::max(1.0, ceiling - floor);
  lo = std::max(lo, floor + room);
  hi = std::min(hi, ceiling - room);
  if (!(hi > lo)) hi = std::min(ceiling - room, lo + 1e-3);
  std::vector<double> levels;
  for (std::int64_t t = 0; t < count; ++t)
    levels.push_back(count == 1 ? lo : lo + (hi - lo) * static_cast<double>(t) / static_cast<double>(count - 1));
  return levels;
}

}  // namespace rguard::retrievalguard
