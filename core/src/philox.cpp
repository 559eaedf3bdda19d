#include "rguard/philox.hpp"

#include <cmath>

namespace rguard {

PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  constexpr std::uint64_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;
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

void philox_normal(std::uint64_t seed, std::uint32_t stream, std::uint32_t query,
                   std::uint32_t sample, std::int64_t count, float* out) {
  const PhiloxKey key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  constexpr double kToUnit = 1.0 / 4294967296.0;  // 2^-32
  constexpr double kTwoPi = 6.283185307179586;
  for (std::int64_t j = 0; j < count; j += 4) {
    const PhiloxCounter r =
        philox4x32_10({static_cast<std::uint32_t>(j / 4), sample, query, stream}, key);
    float z[4];
    for (int pair = 0; pair < 2; ++pair) {
      // u1 in (0, 1) with 32 random bits: the log is finite and the tail reaches 6.66
      // sigma (a coordinate beyond that has probability 2.8e-11; docs/certificates.md).
      const double u1 = (static_cast<double>(r[2 * pair]) + 0.5) * kToUnit;
      const double u2 = static_cast<double>(r[2 * pair + 1]) * kToUnit;
      const double radius = std::sqrt(-2.0 * std::log(u1));
      z[2 * pair] = static_cast<float>(radius * std::cos(kTwoPi * u2));
      z[2 * pair + 1] = static_cast<float>(radius * std::sin(kTwoPi * u2));
    }
    for (std::int64_t i = 0; i < 4 && j + i < count; ++i) out[j + i] = z[i];
  }
}

}  // namespace rguard
