// Counter-based noise: Philox4x32-10 known-answer vectors (Random123's kat_vectors) and
// the distribution of the normals built on it.
#include "prelude.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
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
  CHECK(rguard::Hasher().text("x").hex().size() == 16);
  CHECK(rguard::derive_seed(0, "noise") != rguard::derive_seed(0, "train"));
  CHECK(rguard::derive_seed(0, "noise") != rguard::derive_seed(1, "noise"));
}
