// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11 "Parallel random
// numbers: as easy as 1, 2, 3"). Every value is a pure function of (key, counter), so the
// noise of (seed, stream, query, sample, element) does not depend on batching or threads.
#pragma once

#include <array>
#include <cstdint>

namespace rguard {

using PhiloxCounter = std::array<std::uint32_t, 4>;
using PhiloxKey = std::array<std::uint32_t, 2>;

PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// Standard normal floats for one noisy sample: element j of sample `sample` of query
// `query` in stream `stream`. Box-Muller on Philox output (4 normals per counter), with
// polynomial log/sin/cos in float: vectorised, and the same bits on every machine.
void philox_normal(std::uint64_t seed, std::uint32_t stream, std::uint32_t query,
                   std::uint32_t sample, std::int64_t count, float* out);
// The same values computed one counter at a time without vectorisation (the reference
// the tests compare philox_normal with, bit for bit).
void philox_normal_scalar(std::uint64_t seed, std::uint32_t stream, std::uint32_t query,
                          std::uint32_t sample, std::int64_t count, float* out);

}  // namespace rguard
