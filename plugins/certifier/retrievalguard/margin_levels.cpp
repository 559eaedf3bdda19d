#include "margin_levels.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "level_sets.hpp"

namespace rguard::retrievalguard {

MarginFunction::MarginFunction(const MarginPlan& plan, const float* gallery, std::int64_t rows, std::int64_t dim,
                               std::int64_t ranks)
    : positive_(plan.positive), dim_(dim), ranks_(ranks), excluded_(static_cast<std::int64_t>(plan.excluded.size())) {
  (void)rows;
  if (positive_ < 0) return;
  std::vector<std::int64_t> columns{positive_};
  columns.insert(columns.end(), plan.excluded.begin(), plan.excluded.end());
  for (std::int64_t n : plan.pool)
    if (std::find(plan.excluded.begin(), plan.excluded.end(), n) == plan.excluded.end()) columns.push_back(n);
  std::vector<float> matrix, bias;
  for (std::int64_t j : columns) {
    const float* e = gallery + j * dim;
    matrix.insert(matrix.end(), e, e + dim);
    double n2 = 0;
    for (std::int64_t d = 0; d < dim; ++d) n2 += static_cast<double>(e[d]) * e[d];
    bias.push_back(static_cast<float>(-n2 / 2));
  }
  rows_t_ = at::tensor(matrix, at::kFloat).view({static_cast<std::int64_t>(columns.size()), dim}).t().contiguous();
  bias_ = at::tensor(bias, at::kFloat);
  // V in float against the exact V of the unit rows in double: each of its two terms is off
  // by at most (d + 3) 2^-24 (a float dot product of unit vectors, the half norm, the
  // subtraction) plus 2 nu (a float row of norm 1 +- nu against its unit row, in the score and
  // in the half norm); twice that, and never below 1e-4 (docs/certificates.md).
  double nu = 0;
  for (float half : bias) nu = std::max(nu, std::abs(std::sqrt(-2.0 * half) - 1.0));
  margin_ = std::max(1e-4, 2.0 * (2.0 * static_cast<double>(dim + 3) * std::ldexp(1.0, -24) + 4.0 * nu));
}

void MarginFunction::evaluate(const double* unit, std::int64_t count, std::vector<double>& out) const {
  out.assign(static_cast<std::size_t>(count * ranks_), std::numeric_limits<double>::infinity());
  if (positive_ < 0 || count == 0) return;
  thread_local std::vector<float> single;
  single.assign(unit, unit + count * dim_);
  const at::Tensor f = at::from_blob(single.data(), {count, dim_}, at::kFloat);
  const at::Tensor scores = at::mm(f, rows_t_);  // the only parallel step: BLAS
  const std::int64_t columns = scores.size(1), first_rest = 1 + excluded_;
  const float* s = scores.data_ptr<float>();
  const float* bias = bias_.data_ptr<float>();  // -||e_j||^2/2
  for (std::int64_t i = 0; i < count; ++i) {
    const float* row = s + i * columns;
    // The largest score less half norm over the pool minus T, in one vectorised pass.
    float rest = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : rest)
    for (std::int64_t j = first_rest; j < columns; ++j) rest = std::max(rest, row[j] + bias[j]);
    // V_k: the max without T's first k - 1 negatives, from k = ranks down.
    double running = rest;
    for (std::int64_t k = ranks_; k >= 1; --k) {
      if (k - 1 < excluded_) running = std::max(running, static_cast<double>(row[k] + bias[k]));
      out[static_cast<std::size_t>(i * ranks_ + k - 1)] = static_cast<double>(row[0] + bias[0]) - running;
    }
  }
}

MarginPlan plan_margin(const Selection& selection, const float* gallery, std::int64_t rows, std::int64_t dim,
                       const std::int64_t* labels, std::int64_t label, std::int64_t self, const double* samples,
                       std::int64_t count, std::int64_t ranks, std::int64_t levels, std::int64_t pool) {
  MarginPlan plan;
  plan.positive = selection.positive;
  if (plan.positive < 0) return plan;
  const auto& ranked = selection.ranked;
  for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(ranks) && i < ranked.size(); ++i) plan.excluded.push_back(ranked[i].row);
  if (pool > 0 && static_cast<std::size_t>(pool) < ranked.size()) {
    plan.pruned = true;
    for (std::size_t i = 0; i < static_cast<std::size_t>(pool); ++i) plan.pool.push_back(ranked[i].row);
  } else {
    // Every negative, exact ties with p* included (they keep V <= 0: never certified).
    for (std::int64_t j = 0; j < rows; ++j)
      if (j != self && labels[j] != label) plan.pool.push_back(j);
  }
  std::sort(plan.pool.begin(), plan.pool.end());
  // V_k >= min over the pool minus T_k of -c - c threshold (|<f, u>| <= 1).
  for (std::int64_t k = 1; k <= ranks; ++k) {
    double floor = 0;
    for (std::size_t i = static_cast<std::size_t>(k - 1); i < ranked.size(); ++i)
      if (!plan.pruned || std::binary_search(plan.pool.begin(), plan.pool.end(), ranked[i].row))
        floor = std::min(floor, -ranked[i].c - ranked[i].c * ranked[i].threshold);
    plan.floors.push_back(floor);
  }
  // The levels from V_k of the selection samples (independent of the main samples).
  std::vector<double> v;
  const MarginFunction margin(plan, gallery, rows, dim, ranks);
  margin.evaluate(samples, count, v);
  for (std::int64_t k = 0; k < ranks; ++k) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum2 = 0;
    std::int64_t finite = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      const double x = v[static_cast<std::size_t>(i * ranks + k)];
      if (!std::isfinite(x)) continue;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      sum += x;
      sum2 += x * x;
      ++finite;
    }
    const double mean = finite ? sum / static_cast<double>(finite) : 0;
    const double spread = finite > 1 ? std::sqrt(std::max(0.0, (sum2 - sum * mean) / static_cast<double>(finite - 1))) : 0.1;
    if (finite == 0) lo = hi = 1.0;  // fewer than k negatives: V_k is +inf, every level passes
    const auto row = even_levels(lo - 2 * std::max(spread, 1e-3), hi, plan.floors[static_cast<std::size_t>(k)], 2.0, levels);
    plan.levels.insert(plan.levels.end(), row.begin(), row.end());
  }
  // A query whose selection samples keep even V_ranks's empirical level-set mean at or
  // below 0 would not be certified by D: it is left out (D = 0 for it, B still applies),
  // which spares the matrix product of its main samples.
  const std::int64_t last = ranks - 1;
  std::vector<double> empirical(static_cast<std::size_t>(levels), 0.0);
  for (std::int64_t t = 0; t < levels; ++t) {
    double above = 0;
    for (std::int64_t i = 0; i < count; ++i)
      above += v[static_cast<std::size_t>(i * ranks + last)] >= plan.levels[static_cast<std::size_t>(last * levels + t)] + margin.rounding_margin();
    empirical[static_cast<std::size_t>(t)] = above / static_cast<double>(count);
  }
  const std::vector<double> top(plan.levels.begin() + last * levels, plan.levels.end());
  plan.active = level_set_lower_mean(plan.floors[static_cast<std::size_t>(last)], top, empirical, 0.0) > 0;
  return plan;
}

MarginLevelCounts::MarginLevelCounts(MarginPlan plan, const float* gallery, std::int64_t rows, std::int64_t dim,
                                     std::int64_t ranks, std::int64_t levels, std::int64_t pool, std::int64_t every)
    : plan_(std::move(plan)),
      margin_(plan_, gallery, rows, dim, ranks),
      dim_(dim),
      ranks_(ranks),
      levels_(levels),
      pool_(pool),
      every_(every) {}

std::string MarginLevelCounts::make_id(std::int64_t dim, std::int64_t ranks, std::int64_t levels, std::int64_t pool,
                                       std::int64_t every) {
  return fmt::format("margin_levels.2/{}/ranks={}/K={}/pool={}/every={}", dim, ranks, levels, pool, every);
}

// The layout: [samples seen, samples counted, p*, T (ranks - 1), floors (ranks),
// levels (ranks x K), bins (ranks x (K + 1)), pool].
namespace {
constexpr std::int64_t kHeader = 3;
}

std::int64_t MarginLevelCounts::size() const {
  return kHeader + (ranks_ - 1) + ranks_ + ranks_ * levels_ + ranks_ * (levels_ + 1) + pool_;
}

void MarginLevelCounts::init(double* state) const {
  std::fill(state, state + size(), 0.0);
  state[2] = static_cast<double>(plan_.positive);
  double* at = state + kHeader;
  for (std::int64_t i = 0; i < ranks_ - 1; ++i)
    *at++ = i < static_cast<std::int64_t>(plan_.excluded.size()) ? static_cast<double>(plan_.excluded[i]) : -1.0;
  at = std::copy(plan_.floors.begin(), plan_.floors.end(), at);
  at = std::copy(plan_.levels.begin(), plan_.levels.end(), at);
  at += ranks_ * (levels_ + 1);
  for (std::int64_t i = 0; i < pool_; ++i)
    at[i] = plan_.pruned && i < static_cast<std::int64_t>(plan_.pool.size()) ? static_cast<double>(plan_.pool[i]) : -1.0;
}

void MarginLevelCounts::add(const double* unit, std::int64_t count, double* state) const {
  // Samples whose index is a multiple of `every` are counted (sample order fixes which).
  const auto seen = static_cast<std::int64_t>(state[0]);
  state[0] = static_cast<double>(seen + count);
  if (plan_.positive < 0 || !plan_.active) return;
  thread_local std::vector<double> picked, v;
  picked.clear();
  for (std::int64_t i = (every_ - seen % every_) % every_; i < count; i += every_)
    picked.insert(picked.end(), unit + i * dim_, unit + (i + 1) * dim_);
  const auto chosen = static_cast<std::int64_t>(picked.size()) / dim_;
  if (chosen == 0) return;
  state[1] += static_cast<double>(chosen);
  margin_.evaluate(picked.data(), chosen, v);
  const double* levels = state + kHeader + (ranks_ - 1) + ranks_;
  double* bins = state + kHeader + (ranks_ - 1) + ranks_ + ranks_ * levels_;
  for (std::int64_t i = 0; i < chosen; ++i)
    for (std::int64_t k = 0; k < ranks_; ++k)
      bins[k * (levels_ + 1) + levels_below(levels + k * levels_, levels_, v[static_cast<std::size_t>(i * ranks_ + k)],
                                            margin_.rounding_margin())] += 1.0;
}

MarginLevels read_margin_counts(const double* state, std::int64_t ranks, std::int64_t levels, std::int64_t pool) {
  MarginLevels out;
  out.counted = static_cast<std::int64_t>(state[1]);
  out.positive = static_cast<std::int64_t>(state[2]);
  const double* at = state + kHeader;
  for (std::int64_t i = 0; i < ranks - 1; ++i, ++at)
    if (*at >= 0) out.excluded.push_back(static_cast<std::int64_t>(*at));
  out.floors.assign(at, at + ranks);
  at += ranks;
  const double* bins = at + ranks * levels;
  for (std::int64_t k = 0; k < ranks; ++k) {
    out.levels.emplace_back(at + k * levels, at + (k + 1) * levels);
    out.counts.push_back(counts_from_bins(bins + k * (levels + 1), levels));
  }
  const double* pool_rows = bins + ranks * (levels + 1);
  for (std::int64_t i = 0; i < pool; ++i)
    if (pool_rows[i] >= 0) out.pool.push_back(static_cast<std::int64_t>(pool_rows[i]));
  return out;
}

}  // namespace rguard::retrievalguard
