// Certificate D on the retrieval margin (the default): one statistic per query covers every
// negative at once, V(f) = <f, e_p> - ||e_p||^2/2 - max_n (<f, e_n> - ||e_n||^2/2), the
// margin by which e_p beats the nearest negative for this noisy embedding. Whenever
// E_{x'} V > 0, F(x') is nearer to e_p than to every negative, so the level sets of V
// certify Recall@1 without a union bound over pairs and without a mean-only fallback for
// the negatives that have no levels. V_k leaves out the k - 1 negatives most at risk on the
// selection samples: E_{x'} V_k > 0 keeps e_p among the k nearest (certified Recall@K).
// Proofs in docs/certificates.md ("Theorem D").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rguard/statistics.hpp"
#include "selection.hpp"

namespace rguard::retrievalguard {

// Fixed from the selection samples: p*, the excluded negatives T (the ranks - 1 most at
// risk, in order), the negatives in the max (all, or the `pool` most at risk), and per k
// the margin's lower end and K levels.
struct MarginPlan {
  std::int64_t positive = -1;
  std::vector<std::int64_t> excluded;  // T, at most ranks - 1
  std::vector<std::int64_t> pool;      // the negatives V's max runs over (T included)
  bool pruned = false;                 // pool holds fewer than every negative
  std::vector<double> floors;          // [ranks]: V_k >= floor_k always
  std::vector<double> levels;          // [ranks x K], each row ascending
  bool active = true;                  // false: the selection says D cannot certify; nothing is counted
};

// V_1..V_ranks of noisy unit embeddings, from the gallery's float rows [rows x dim] (what
// the core keeps) with one matrix product: a level counts only when V is at least that
// level plus rounding_margin(), twice the worst rounding (docs/certificates.md).
class MarginFunction {
 public:
  MarginFunction(const MarginPlan& plan, const float* gallery, std::int64_t rows, std::int64_t dim, std::int64_t ranks);
  // out: [count x ranks]; +inf for V_k when fewer than k negatives exist.
  void evaluate(const double* unit, std::int64_t count, std::vector<double>& out) const;
  double rounding_margin() const { return margin_; }

 private:
  // The rows that matter, [p*, T..., the pool minus T...], transposed [dim x columns], and
  // -||e_j||^2/2 per column.
  at::Tensor rows_t_, bias_;
  std::int64_t positive_, dim_, ranks_, excluded_;
  double margin_ = 1e-4;
};

// p*, T and the pool from the selection's ranking (pool = 0: every negative); per k the
// levels evenly from 2 standard deviations below the smallest V_k of the selection samples
// to their largest.
MarginPlan plan_margin(const Selection& selection, const float* gallery, std::int64_t rows, std::int64_t dim,
                       const std::int64_t* labels, std::int64_t label, std::int64_t self, const double* samples,
                       std::int64_t count, std::int64_t ranks, std::int64_t levels, std::int64_t pool);

// State = [samples seen, samples counted, p*, T (ranks - 1, -1 padded), floors (ranks),
// levels (ranks x K), bins (ranks x (K + 1)), pool (`pool` rows, -1 padded; none when 0)].
class MarginLevelCounts final : public Statistic {
 public:
  // Counts the main samples whose index is a multiple of `every` (the product with the
  // gallery is the costly part; the others feed only the mean).
  MarginLevelCounts(MarginPlan plan, const float* gallery, std::int64_t rows, std::int64_t dim, std::int64_t ranks,
                    std::int64_t levels, std::int64_t pool, std::int64_t every);
  static std::string make_id(std::int64_t dim, std::int64_t ranks, std::int64_t levels, std::int64_t pool,
                             std::int64_t every);
  std::string id() const override { return make_id(dim_, ranks_, levels_, pool_, every_); }
  std::int64_t size() const override;
  void init(double* state) const override;
  void add(const double* unit, std::int64_t count, double* state) const override;

 private:
  MarginPlan plan_;
  MarginFunction margin_;
  std::int64_t dim_, ranks_, levels_, pool_, every_;
};

// V_k's lower end, levels and counts #{V_k >= t_i}, k = 1..ranks, read back from a state.
struct MarginLevels {
  std::int64_t counted = 0;  // the samples the counts are out of
  std::int64_t positive = -1;
  std::vector<std::int64_t> excluded, pool;
  std::vector<double> floors;
  std::vector<std::vector<double>> levels, counts;  // [ranks][K]
};
MarginLevels read_margin_counts(const double* state, std::int64_t ranks, std::int64_t levels, std::int64_t pool);

}  // namespace rguard::retrievalguard
