// Plugin kind "noise": the smoothing distribution, in [0,1] pixel space.
#pragma once

#include <cstdint>

#include "rguard/plugin.hpp"

namespace rguard {

class Noise : public Plugin {
 public:
  // Distribution family ("gaussian"); certifiers refuse families their theorem does not cover.
  virtual const char* family() const = 0;
  virtual double sigma() const = 0;
  // Writes the noise of samples [first, first + count) of query `query_id` into `out`
  // (count x dim floats, row-major). A pure function of (seed, query_id, sample index,
  // element): the same whatever the batch size, thread count, shard or resume.
  virtual void sample(std::uint64_t seed, std::int64_t query_id, std::int64_t first,
                      std::int64_t count, std::int64_t dim, float* out) const = 0;
};

}  // namespace rguard
