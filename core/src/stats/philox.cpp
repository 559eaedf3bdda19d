#include "rguard/philox.hpp"

#include <bit>
#include <cmath>

namespace rguard {

namespace {

constexpr std::uint64_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
constexpr std::uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;

// ln(x) for normal floats x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), and
// ln m = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716, by its series to s^11 (truncation
// error < 2e-10, far below float rounding). Only +, -, *, / and bit operations: the same
// bits on every x86-64 (scalar, SSE or AVX), unlike libm, whose ifunc variants (FMA or
// not) may round differently from machine to machine.
inline float log_poly(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  auto mantissa_bits = (bits & 0x007FFFFFu) | 0x3F800000u;           // m in [1, 2)
  const std::uint32_t high = mantissa_bits > 0x3FB504F3u ? 1u : 0u;  // m > sqrt(2): halve it
  mantissa_bits -= high << 23;
  const auto exponent = static_cast<std::int32_t>((bits >> 23) + high) - 127;
  const float m = std::bit_cast<float>(mantissa_bits);
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9 + s2 * (1.0f / 11)))));
  return 2.0f * s * series + static_cast<float>(exponent) * 0.69314718f;
}

inline PhiloxCounter philox_rounds(PhiloxCounter c, PhiloxKey k) {
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = kMul0 * c[0];
    const std::uint64_t p1 = kMul1 * c[2];
    c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
         static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

// sin and cos of theta in [-pi/4, pi/4] by Taylor polynomials (errors < 2e-9, 1e-10).
inline float sin_poly(float t) {
  const float t2 = t * t;
  return t * (1.0f - t2 * (1.0f / 6 - t2 * (1.0f / 120 - t2 * (1.0f / 5040 - t2 * (1.0f / 362880)))));
}
inline float cos_poly(float t) {
  const float t2 = t * t;
  return 1.0f - t2 * (0.5f - t2 * (1.0f / 24 - t2 * (1.0f / 720 - t2 * (1.0f / 40320 - t2 * (1.0f / 3628800)))));
}

// Box-Muller on one pair of 32-bit words (radial, angular):
//   u1 = (radial/2 + 1/4) 2^-31 in (0, 1] -> radius sqrt(-2 ln u1), at most 6.76 (u1 >= 2^-33);
//   the angle q pi/2 + theta, quadrant q = top 2 bits of `angular`, theta uniform in
//   [-pi/4, pi/4) from its low 30 bits: a uniform angle over a full turn, so
//   radius (cos, sin) of it is a pair of independent N(0, 1) values.
inline void box_muller(std::uint32_t radial, std::uint32_t angular, float* z) {
  const float u = static_cast<float>(static_cast<std::int32_t>(radial >> 1)) + 0.25f;
  const float radius = std::sqrt(-2.0f * log_poly(u * 0x1p-31f));  // exact scaling by 2^-31
  const std::uint32_t quadrant = angular >> 30;
  const float theta =
      (static_cast<float>(static_cast<std::int32_t>(angular & 0x3FFFFFFFu)) * 0x1p-30f - 0.5f) * 1.57079633f;
  const float c = cos_poly(theta), s = sin_poly(theta);
  // Rotate (cos theta, sin theta) by `quadrant` quarter turns, without branches:
  // odd quadrants swap cos and sin; cos is negated in quadrants 1, 2 and sin in 2, 3.
  const std::uint32_t swap = 0u - (quadrant & 1u);
  const auto cb = std::bit_cast<std::uint32_t>(c), sb = std::bit_cast<std::uint32_t>(s);
  const std::uint32_t first_bits = (cb & ~swap) | (sb & swap), second_bits = (sb & ~swap) | (cb & swap);
  const std::uint32_t cos_sign = ((quadrant + 1u) & 2u) << 30, sin_sign = (quadrant & 2u) << 30;
  const float cos_angle = std::bit_cast<float>(first_bits ^ cos_sign);
  const float sin_angle = std::bit_cast<float>(second_bits ^ sin_sign);
  z[0] = radius * cos_angle;
  z[1] = radius * sin_angle;
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) { return philox_rounds(c, k); }

// Each counter (element/4, sample, query, stream) gives four normals: Box-Muller on its
// words (r0, r1) and (r2, r3). Written as loops over blocks of counters without calls or
// branches so the compiler vectorises them (SSE2, or AVX2 where the CPU has it); the
// result is bit-identical to philox_normal_scalar, which the tests check.
__attribute__((target_clones("avx2", "default"))) void philox_normal(std::uint64_t seed, std::uint32_t stream,
                                                                     std::uint32_t query, std::uint32_t sample,
                                                                     std::int64_t count, float* out) {
  constexpr int kBlock = 64;  // counters per pass: 256 normals
  const auto key0 = static_cast<std::uint32_t>(seed), key1 = static_cast<std::uint32_t>(seed >> 32);
  std::uint32_t r0[kBlock], r1[kBlock], r2[kBlock], r3[kBlock];
  float z[4 * kBlock];
  for (std::int64_t first = 0; first < count; first += 4 * kBlock) {
    const auto base = static_cast<std::uint32_t>(first / 4);
    for (int i = 0; i < kBlock; ++i) {
      const PhiloxCounter r =
          philox_rounds({base + static_cast<std::uint32_t>(i), sample, query, stream}, {key0, key1});
      r0[i] = r[0];
      r1[i] = r[1];
      r2[i] = r[2];
      r3[i] = r[3];
    }
    for (int pair = 0; pair < 2; ++pair) {
      const std::uint32_t* radial = pair == 0 ? r0 : r2;
      const std::uint32_t* angular = pair == 0 ? r1 : r3;
      for (int i = 0; i < kBlock; ++i) {
        box_muller(radial[i], angular[i], z + 4 * i + 2 * pair);
      }
    }
    const std::int64_t n = std::min<std::int64_t>(4 * kBlock, count - first);
    for (std::int64_t j = 0; j < n; ++j) out[first + j] = z[j];
  }
}

__attribute__((optimize("no-tree-vectorize"))) void philox_normal_scalar(std::uint64_t seed, std::uint32_t stream,
                                                                         std::uint32_t query, std::uint32_t sample,
                                                                         std::int64_t count, float* out) {
  const PhiloxKey key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  for (std::int64_t j = 0; j < count; j += 4) {
    const PhiloxCounter r = philox_rounds({static_cast<std::uint32_t>(j / 4), sample, query, stream}, key);
    float z[4];
    box_muller(r[0], r[1], z);
    box_muller(r[2], r[3], z + 2);
    for (std::int64_t i = 0; i < 4 && j + i < count; ++i) out[j + i] = z[i];
  }
}

}  // namespace rguard
