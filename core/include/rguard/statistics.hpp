// What a certifier keeps of one query's noisy embeddings. The certifier declares it (a list
// of parts), the core streams the query's noisy unit embeddings through those parts in
// sample order, stores their state per query block in the cache under a key that names
// every part, and hands the state back to the certifier. A part's state is a fixed number
// of doubles per query and a pure function of the samples fed in order, so it is the same
// bytes whatever the batch size, thread count, shard or resume. Blocks hold whole queries:
// merging blocks (across shards and resumes) is concatenation in query order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rguard {

class Statistic {
 public:
  virtual ~Statistic();
  // What it accumulates, with every parameter that changes its state ("sum/64"). The same
  // for every query of a point: it is part of the cache key of the point's samples.
  virtual std::string id() const = 0;
  virtual std::int64_t size() const = 0;  // doubles of state
  // The state before any sample (zeros unless the part records something, e.g. its levels).
  virtual void init(double* state) const;
  // Adds `count` unit embeddings ([count x dim], row-major, in double) in sample order.
  virtual void add(const double* unit, std::int64_t count, double* state) const = 0;
};

// A query's parts, their states laid out one after another.
using Statistics = std::vector<std::shared_ptr<const Statistic>>;
std::int64_t state_size(const Statistics& parts);
std::string statistics_id(const Statistics& parts);  // the parts' ids joined with '+'

// sum_i f_i: the dim doubles of which F-hat = sum / n.
std::shared_ptr<const Statistic> sum_statistic(std::int64_t dim);

// The packed upper triangle of sum_i f_i f_i^T, row by row ((0,0), (0,1), ..., (1,1), ...):
// dim (dim + 1) / 2 doubles.
std::shared_ptr<const Statistic> second_moment_statistic(std::int64_t dim);
constexpr std::int64_t packed_size(std::int64_t dim) { return dim * (dim + 1) / 2; }

// The first `count` unit embeddings themselves, in sample order: 1 + count x dim doubles
// (state[0] says how many are stored). For a small selection sample (Cohen et al.'s
// n0 = 100), never for the main samples, which are streamed.
std::shared_ptr<const Statistic> samples_statistic(std::int64_t count, std::int64_t dim);

// The unbiased sample covariance (S2 - S1 S1^T / n) / (n - 1) as a row-major [dim x dim]
// matrix, from S1 = sum f and S2 the packed sum f f^T.
std::vector<double> sample_covariance(std::int64_t n, std::int64_t dim, const double* sum, const double* sum_squares);

}  // namespace rguard
