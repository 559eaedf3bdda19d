// Plugin kind "certifier": turns Monte-Carlo sufficient statistics of one query into a
// certified radius (product.md section 2).
#pragma once

#include <cstdint>
#include <string>

#include "rguard/plugin.hpp"
#include "rguard/retrieval.hpp"

namespace rguard {

class Noise;

// How many noisy samples the executor streams per query, and in what batches.
struct SamplingPlan {
  std::int64_t n = 0;        // samples per query
  std::int64_t batch = 0;    // noisy images per forward pass (queries are packed when n < batch)
  std::int64_t queries = 0;  // how many queries to certify (0 = all eligible)
  bool second_moments = false;  // also sum f f^T per query (QueryStats::sum_squares)
};

// How many numbers the packed upper triangle of a dim x dim symmetric matrix holds.
constexpr std::int64_t packed_size(std::int64_t dim) { return dim * (dim + 1) / 2; }

// The sufficient statistics of one query: F-hat = sum / n (sum in double).
struct QueryStats {
  std::int64_t query_id = 0;
  std::int64_t label = 0;
  std::int64_t gallery_index = -1;  // the query's own gallery row (excluded), or -1
  std::int64_t n = 0;
  const double* sum = nullptr;      // [dim]
  // When plan().second_moments: the packed upper triangle of sum f f^T, row by row
  // ((0,0), (0,1), ..., (1,1), ...), dim (dim + 1) / 2 values; null otherwise.
  const double* sum_squares = nullptr;
};

struct Certificate {
  std::int64_t query_id = 0, label = 0, n = 0;
  std::int64_t predict_index = -1;  // smoothed 1-NN's gallery row
  std::int64_t predict_label = -1;
  double rho = 0, f_norm = 0, d_pos = 0, d_neg = 0;
  double radius_a = 0, radius_b = 0, radius_c = 0;
  double radius = 0;     // the certifier's chosen radius; 0 when abstaining
  bool abstain = true;   // radius <= 0: not certified at any r, r = 0 included
  bool correct = false;  // the smoothed 1-NN (by F-hat) is a positive
};

class Certifier : public Plugin {
 public:
  virtual SamplingPlan plan() const = 0;
  virtual double alpha() const = 0;
  // Throws rguard::Error when the noise is not covered by the certifier's theorem.
  virtual void check_noise(const Noise& noise) const = 0;
  virtual Certificate certify(const QueryStats& stats, const GalleryView& gallery,
                              double sigma) const = 0;
};

}  // namespace rguard
