// Counter-based noise: Philox4x32-10 known-answer vectors (Random123's kat_vectors) and
// the distribution of the normals built on it; the content hash (XXH3-128 known answers)
// and the seed mixer.
#include "prelude.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "rguard/hash.hpp"
#include "rguard/normal.hpp"
#include "rguard/philox.hpp"

TEST_CASE("Philox4x32-10 known-answer vectors (Random123 kat_vectors)") {
  using rguard::philox4x32_10;
  CHECK(philox4x32_10({0, 0, 0, 0}, {0, 0}) == rguard::PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        rguard::PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        rguard::PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("philox_normal is a pure function of (seed stream query sample)") {
  std::vector<float> a(103), b(103), c(103);
  rguard::philox_normal(42, 0, 7, 9, 103, a.data());
  rguard::philox_normal(42, 0, 7, 9, 103, b.data());
  CHECK(a == b);
  rguard::philox_normal(42, 0, 7, 10, 103, c.data());
  CHECK(a != c);
  rguard::philox_normal(43, 0, 7, 9, 103, c.data());
  CHECK(a != c);
  // A prefix of a longer row is the shorter row (elements are counter-addressed).
  std::vector<float> shorter(50);
  rguard::philox_normal(42, 0, 7, 9, 50, shorter.data());
  CHECK(std::equal(shorter.begin(), shorter.end(), a.begin()));
}

TEST_CASE("philox_normal: vectorised and scalar code give the same bits") {
  // Lengths that are not multiples of the vector block, all four quadrants and extreme
  // radial words are covered by 2e5 values per length.
  for (std::int64_t count : {1, 3, 4, 255, 256, 257, 784, 3 * 224 * 224}) {
    std::vector<float> fast(static_cast<std::size_t>(count)), scalar(static_cast<std::size_t>(count));
    for (std::uint32_t s = 0; s < 40; ++s) {
      rguard::philox_normal(0xDEADBEEFCAFEull, 0, 5, s, count, fast.data());
      rguard::philox_normal_scalar(0xDEADBEEFCAFEull, 0, 5, s, count, scalar.data());
      REQUIRE(std::memcmp(fast.data(), scalar.data(), fast.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("philox_normal moments and quantiles match N(0 1)") {
  const int samples = 2000, dim = 500;  // 1e6 values
  std::vector<float> row(dim);
  std::vector<float> all;
  all.reserve(samples * dim);
  double sum = 0, sum2 = 0, sum4 = 0;
  for (int s = 0; s < samples; ++s) {
    rguard::philox_normal(1, 0, 3, static_cast<std::uint32_t>(s), dim, row.data());
    for (float z : row) {
      sum += z;
      sum2 += double(z) * z;
      sum4 += std::pow(double(z), 4);
      all.push_back(z);
    }
  }
  const double n = double(samples) * dim;
  CHECK(std::abs(sum / n) < 5 * std::sqrt(1 / n));            // mean 0
  CHECK(std::abs(sum2 / n - 1) < 5 * std::sqrt(2 / n));       // variance 1
  CHECK(std::abs(sum4 / n - 3) < 5 * std::sqrt(96 / n));      // kurtosis 3
  std::sort(all.begin(), all.end());
  for (double p : {0.001, 0.025, 0.5, 0.9, 0.999}) {
    const double empirical = all[static_cast<std::size_t>(p * n)];
    CHECK(empirical == doctest::Approx(rguard::normal_quantile(p)).epsilon(0.02).scale(1));
  }
}

TEST_CASE("hash: stable order and boundary sensitive") {
  CHECK(rguard::Hasher().text("ab").text("c").hex() != rguard::Hasher().text("a").text("bc").hex());
  CHECK(rguard::Hasher().text("x").hex() == rguard::Hasher().text("x").hex());
  CHECK(rguard::Hasher().text("x").hex().size() == 32);
  CHECK(rguard::Hasher(1).text("x").hex() != rguard::Hasher(2).text("x").hex());
  CHECK(rguard::derive_seed(0, "noise") != rguard::derive_seed(0, "train"));
  CHECK(rguard::derive_seed(0, "noise") != rguard::derive_seed(1, "noise"));
}

namespace {
// xxHash's sanity-check buffer (cli/xsum_sanity_check.c, XSUM_fillTestBuffer).
std::vector<unsigned char> xxhash_test_buffer(std::size_t size) {
  std::vector<unsigned char> buffer(size);
  std::uint64_t generator = 2654435761U;
  for (auto& byte : buffer) {
    byte = static_cast<unsigned char>(generator >> 56);
    generator *= 11400714785074694797ULL;
  }
  return buffer;
}
}  // namespace

TEST_CASE("hash: XXH3-128 known answers (xxHash 0.8.1's own test vectors), whole, in pieces and from a file") {
  // cli/xsum_sanity_check.c, XSUM_XXH128_testdata: {length, seed, {low64, high64}}; hex()
  // prints the canonical form, high half first.
  struct Vector {
    std::size_t size;
    std::uint64_t seed, low, high;
  };
  constexpr std::uint64_t p32 = 2654435761U, p64 = 11400714785074694797ULL;
  const Vector vectors[] = {
      {0, 0, 0x6001C324468D497FULL, 0x99AA06D3014798D8ULL},     {0, p32, 0x5444F7869C671AB0ULL, 0x92220AE55E14AB50ULL},
      {1, 0, 0xC44BDFF4074EECDBULL, 0xA6CD5E9392000F6AULL},     {6, p32, 0x269D8F70BE98856EULL, 0x5A865B5389ABD2B1ULL},
      {12, 0, 0x061A192713F69AD9ULL, 0x6E3EFD8FC7802B18ULL},    {24, p32, 0xD7304C54EBAD40A9ULL, 0x3162026714A6A243ULL},
      {48, 0, 0xF942219AED80F67BULL, 0xA002AC4E5478227EULL},    {81, p32, 0x703FBB3D7A5F755CULL, 0x2724EC7ADC750FB6ULL},
      {222, 0, 0xF1AEBD597CEC6B3AULL, 0x337E09641B948717ULL},   {403, p64, 0x6259F6ECFD6443FDULL, 0xBED311971E0BE8F2ULL},
      {512, 0, 0x617E49599013CB6BULL, 0x18D2D110DCC9BCA1ULL},   {2048, p32, 0x230D43F30206260BULL, 0x7FB03F7E7186C3EAULL},
      {2240, 0, 0x6E73A90539CF2948ULL, 0xCCB134FBFA7CE49DULL},  {2367, p32, 0x6F5360AE69C2F406ULL, 0xD23AAE4B76C31ECBULL},
  };
  const auto buffer = xxhash_test_buffer(2367);
  const auto path = std::filesystem::temp_directory_path() / ("rguard_test_hash_" + std::to_string(::getpid()));
  for (const auto& v : vectors) {
    INFO("length " << v.size << ", seed " << v.seed);
    const std::string expected = rguard::to_hex(v.high) + rguard::to_hex(v.low);
    CHECK(rguard::Hasher(v.seed).bytes(buffer.data(), v.size).hex() == expected);
    rguard::Hasher pieces(v.seed);  // streaming: the same digest whatever the cuts
    for (std::size_t at = 0, cut = 1; at < v.size; at += cut, cut = cut * 3 + 1)
      pieces.bytes(buffer.data() + at, std::min(cut, v.size - at));
    CHECK(pieces.hex() == expected);
    const rguard::Hasher copy = pieces;  // a copy carries the state on
    CHECK(copy.hex() == expected);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(v.size));
    CHECK(rguard::hash_file(path.string(), v.seed) == expected);
  }
  std::filesystem::remove(path);
  CHECK(!rguard::hash_file(path.string()).has_value());
}

TEST_CASE("hash: keys and seeds are stable") {
  // Keys: text() is a little-endian u64 length, then the bytes; the default seed is
  // 0x9e3779b97f4a7c15. Reference: python3-xxhash 3.2 (/usr/bin/python3), e.g.
  //   xxhash.xxh3_128_hexdigest(struct.pack('<Q', 9) + b'samples/3' + struct.pack('<Q', 10000), seed=12345)
  CHECK(rguard::Hasher().text("x").hex() == "13983fd60510c1e12ffa3fb5bc088859");
  CHECK(rguard::Hasher().text("samples/3").u64(10000).hex() == "b767c05025bdbab849ebbd176653ef93");
  CHECK(rguard::Hasher(12345).text("samples/3").u64(10000).hex() == "295d370981a0a69da7b747873c7ec24a");
  // Seeds: digest() is the 64-bit mixer every random stream comes from, unchanged since
  // before the keys moved to XXH3-128 (values from that build), so samples stay the same.
  CHECK(rguard::derive_seed(0, "noise") == 8974618297721934935ULL);
  CHECK(rguard::derive_seed(1, "noise/certify") == 14594632791690003036ULL);
  CHECK(rguard::derive_seed(20240101, "queries") == 10179838048669326608ULL);
  CHECK(rguard::Hasher(7).u64(5).u64(9).digest() == 2046062011178348577ULL);
  CHECK(rguard::Hasher().digest() == 16294208416658607535ULL);
  CHECK(rguard::Hasher(42).text("smooth_pgd").digest() == 9731885652076276695ULL);
  unsigned char bytes[23];  // a partial last word
  for (int i = 0; i < 23; ++i) bytes[i] = static_cast<unsigned char>(i * 7 + 1);
  CHECK(rguard::Hasher().bytes(bytes, 23).text("abc").digest() == 12587131751201740333ULL);
}
