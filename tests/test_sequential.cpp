// Sequential certification (Theorem S, docs/certificates.md): the schedule of looks and the
// alpha each spends, and coverage under optional stopping: with the schedule's alphas a
// bound holds at a data-dependent stopping time in >= 1 - alpha of repetitions, while the
// same stopping rule with fixed-n bounds (alpha at every look) fails, so the test can fail;
// and the certifier's stopping rule (plugins/certifier/retrievalguard/stopping.hpp).
#include "prelude.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "rguard/concentration.hpp"
#include "rguard/error.hpp"
#include "rguard/sequential.hpp"
#include "stopping.hpp"

namespace {

// The adversary's rule: look after each round and stop at the first look whose bound is
// violated (the worst any data-dependent stopping rule can do). Returns the fraction of
// repetitions it stopped at a violation. `violated(look, samples, successes)` decides.
template <class Violated>
double stopped_at_violation(const std::vector<std::int64_t>& sizes, double p, int repetitions, std::uint64_t seed,
                            Violated violated) {
  std::mt19937_64 rng(seed);
  int stopped = 0;
  for (int rep = 0; rep < repetitions; ++rep) {
    std::int64_t successes = 0, drawn = 0;
    for (std::size_t look = 0; look < sizes.size(); ++look) {
      std::binomial_distribution<std::int64_t> more(sizes[look] - drawn, p);
      successes += more(rng);
      drawn = sizes[look];
      if (violated(look, drawn, successes)) {
        ++stopped;
        break;
      }
    }
  }
  return static_cast<double>(stopped) / repetitions;
}

// Three standard errors of a rate near alpha over `repetitions`.
double three_se(double alpha, int repetitions) { return 3.0 * std::sqrt(alpha * (1 - alpha) / repetitions); }

}  // namespace

TEST_CASE("sequential schedule: geometric looks, the last at n, 0.3 of alpha at n, the rest by the early looks' samples") {
  const auto s = rguard::geometric_schedule(1000, 2.0, 100000, 0.001);
  CHECK(s.sizes == std::vector<std::int64_t>{1000, 2000, 4000, 8000, 16000, 32000, 64000, 100000});
  REQUIRE(s.alphas.size() == s.sizes.size());
  // The early looks hold 1 + 2 + ... + 64 = 127 thousand samples: look r spends 0.0007 n_r / 127000.
  for (std::size_t r = 0; r + 1 < s.alphas.size(); ++r)
    CHECK(s.alphas[r] == doctest::Approx(0.0007 * static_cast<double>(1 << r) / 127.0).epsilon(1e-14));
  CHECK(s.alphas[6] == doctest::Approx(0.0007 * 64.0 / 127.0).epsilon(1e-14));
  CHECK(s.alphas.back() == doctest::Approx(0.0003).epsilon(1e-14));
  // final_share 0.5: half at n, the other half by samples.
  const auto half = rguard::geometric_schedule(1000, 2.0, 4000, 0.01, 0.5);
  CHECK(half.alphas[0] == doctest::Approx(0.005 / 3).epsilon(1e-14));
  CHECK(half.alphas[1] == doctest::Approx(0.01 / 3).epsilon(1e-14));
  CHECK(half.alphas[2] == doctest::Approx(0.005).epsilon(1e-14));
  CHECK(std::accumulate(s.alphas.begin(), s.alphas.end(), 0.0) <= 0.001);  // never more than alpha, rounding included
  CHECK(s.look_at(4000) == 2);
  CHECK(s.look_at(100000) == 7);
  CHECK(s.look_at(4001) == -1);
  // A look within sqrt(g) of n merges into the look at n: 1000 * 2^6 = 64000 stays for
  // n = 90600 (64000 sqrt 2 = 90510 < 90600) and goes for n = 90000.
  CHECK(rguard::geometric_schedule(1000, 2.0, 90600, 0.001).sizes ==
        std::vector<std::int64_t>{1000, 2000, 4000, 8000, 16000, 32000, 64000, 90600});
  CHECK(rguard::geometric_schedule(1000, 2.0, 90000, 0.001).sizes ==
        std::vector<std::int64_t>{1000, 2000, 4000, 8000, 16000, 32000, 90000});
  // Non-integer growth rounds each look up to a whole sample.
  CHECK(rguard::geometric_schedule(100, 1.5, 1000, 0.01).sizes == std::vector<std::int64_t>{100, 150, 225, 338, 507, 760, 1000});
  // One look (first = n): fixed n, all of alpha at n.
  const auto fixed = rguard::geometric_schedule(5000, 2.0, 5000, 0.001);
  CHECK(fixed.sizes == std::vector<std::int64_t>{5000});
  CHECK(fixed.alphas == std::vector<double>{0.001});
  // final_share 1: early looks spend nothing (they may only abstain).
  const auto abstain_only = rguard::geometric_schedule(1000, 2.0, 8000, 0.001, 1.0);
  CHECK(abstain_only.alphas.front() == 0.0);
  CHECK(abstain_only.alphas.back() <= 0.001);
  CHECK(abstain_only.alphas.back() > 0.001 * (1 - 1e-14));
  CHECK_THROWS_AS(rguard::geometric_schedule(0, 2.0, 100, 0.001), rguard::Error);
  CHECK_THROWS_AS(rguard::geometric_schedule(200, 2.0, 100, 0.001), rguard::Error);
  CHECK_THROWS_AS(rguard::geometric_schedule(10, 1.0, 100, 0.001), rguard::Error);
  CHECK_THROWS_AS(rguard::geometric_schedule(10, 2.0, 100, 0.0), rguard::Error);
  CHECK_THROWS_AS(rguard::geometric_schedule(10, 2.0, 100, 0.001, 0.0), rguard::Error);
}

TEST_CASE("sequential schedule: a step cap turns the geometric looks into one every max_step samples, none within half a step of n") {
  // Growth 1.5 from 1000: 1000 ... 17086 (step 8543 <= 10000), then 25629 - 17086 = 8543, and
  // 25629 * 0.5 = 12815 > 10000: every 10000 from there, the last before n at 85629 (95629 is
  // within 5000 of n).
  const auto s = rguard::geometric_schedule(1000, 1.5, 100000, 0.001, 0.3, 10000);
  CHECK(s.sizes == std::vector<std::int64_t>{1000, 1500, 2250, 3375, 5063, 7594, 11391, 17086, 25629, 35629, 45629, 55629,
                                             65629, 75629, 85629, 100000});
  REQUIRE(s.alphas.size() == s.sizes.size());
  const double early = std::accumulate(s.sizes.begin(), s.sizes.end() - 1, 0.0);
  for (std::size_t r = 0; r + 1 < s.sizes.size(); ++r)
    CHECK(s.alphas[r] == doctest::Approx(0.0007 * static_cast<double>(s.sizes[r]) / early).epsilon(1e-14));
  CHECK(s.alphas.back() == doctest::Approx(0.0003).epsilon(1e-14));
  CHECK(std::accumulate(s.alphas.begin(), s.alphas.end(), 0.0) <= 0.001);
  // A cap no step reaches changes nothing; a cap below the first step makes the looks arithmetic from the first.
  CHECK(rguard::geometric_schedule(1000, 2.0, 100000, 0.001, 0.3, 50000).sizes ==
        rguard::geometric_schedule(1000, 2.0, 100000, 0.001).sizes);
  CHECK(rguard::geometric_schedule(1000, 2.0, 5000, 0.001, 0.3, 500).sizes ==
        std::vector<std::int64_t>{1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000});
  // A capped look within half a step of n merges into n: 3500 + 1500 / 2 >= 4200, but < 4300.
  CHECK(rguard::geometric_schedule(1000, 2.0, 4200, 0.001, 0.3, 1500).sizes == std::vector<std::int64_t>{1000, 2000, 4200});
  CHECK(rguard::geometric_schedule(1000, 2.0, 4300, 0.001, 0.3, 1500).sizes ==
        std::vector<std::int64_t>{1000, 2000, 3500, 4300});
  CHECK_THROWS_AS(rguard::geometric_schedule(1000, 2.0, 5000, 0.001, 0.3, -1), rguard::Error);
  // A fractional size just below n rounds up to n: n is the last look, once (here 19.x,
  // capped at 1, would round to 20).
  for (const auto& [first, growth, n] : {std::tuple{1, 1.5, 20}, std::tuple{5, 1.1, 50}, std::tuple{1, 1.0001, 100}}) {
    const auto t = rguard::geometric_schedule(first, growth, n, 0.01, 0.3, growth < 1.001 ? 0 : 1);
    INFO(first << " " << growth << " " << n);
    CHECK(t.sizes.back() == n);
    CHECK(std::adjacent_find(t.sizes.begin(), t.sizes.end(), std::greater_equal<>()) == t.sizes.end());
    CHECK(t.look_at(n) == static_cast<int>(t.sizes.size()) - 1);
  }
}

TEST_CASE("optional stopping: Clopper-Pearson holds at the stopping time with the schedule's alphas - not with alpha at every look") {
  // Bernoulli(p) successes; a violation is a lower bound above p. Eight looks, 100 to 12800.
  const double alpha = 0.05, p = 0.3;
  const auto s = rguard::geometric_schedule(100, 2.0, 12800, alpha);
  REQUIRE(s.sizes.size() == 8);
  const int repetitions = 20000;
  const double sequential = stopped_at_violation(s.sizes, p, repetitions, 1, [&](std::size_t look, std::int64_t m, std::int64_t k) {
    return rguard::clopper_pearson_lower(k, m, s.alphas[look]) > p;
  });
  const double fixed = stopped_at_violation(s.sizes, p, repetitions, 1, [&](std::size_t, std::int64_t m, std::int64_t k) {
    return rguard::clopper_pearson_lower(k, m, alpha) > p;
  });
  INFO("stopped at a violation: sequential " << sequential << ", fixed-n bounds " << fixed);
  CHECK(sequential <= alpha + three_se(alpha, repetitions));
  CHECK(fixed > alpha + three_se(alpha, repetitions));  // fixed-n bounds at a stopping time fail
}

TEST_CASE("optional stopping: the mean's rho holds at the stopping time with the schedule's alphas") {
  // f = (cos a, +-sin a) with probability 1/2 each, so F = (cos a, 0) and ||F|| = cos a;
  // ||F-hat - F|| = sin a |2k/m - 1| for k plus signs among m. A violation: above rho.
  const double alpha = 0.05, a = 0.6;
  const auto s = rguard::geometric_schedule(100, 2.0, 12800, alpha);
  const int repetitions = 20000;
  auto deviation = [&](std::int64_t m, std::int64_t k) {
    return std::sin(a) * std::abs(2.0 * static_cast<double>(k) / static_cast<double>(m) - 1.0);
  };
  auto f_hat_norm = [&](std::int64_t m, std::int64_t k) { return std::hypot(std::cos(a), deviation(m, k)); };
  for (const bool bernstein : {true, false}) {
    auto rho = [&](std::int64_t m, double alpha_look, double norm) {
      return bernstein ? rguard::bernstein_radius(m, alpha_look, norm) : rguard::mcdiarmid_radius(m, alpha_look);
    };
    const double sequential = stopped_at_violation(s.sizes, 0.5, repetitions, 2, [&](std::size_t look, std::int64_t m, std::int64_t k) {
      return deviation(m, k) > rho(m, s.alphas[look], f_hat_norm(m, k));
    });
    INFO((bernstein ? "bernstein" : "mcdiarmid") << ": stopped at a violation " << sequential);
    CHECK(sequential <= alpha + three_se(alpha, repetitions));
    // The same adversary with rho shrunk 3x (a bound that is too small) stops at violations
    // far more often than alpha: the simulation can see a failure.
    const double shrunk = stopped_at_violation(s.sizes, 0.5, repetitions, 2, [&](std::size_t look, std::int64_t m, std::int64_t k) {
      return deviation(m, k) > rho(m, s.alphas[look], f_hat_norm(m, k)) / 3.0;
    });
    CHECK(shrunk > alpha + three_se(alpha, repetitions));
  }
}

namespace {
// A certificate with these Recall@K radii (Recall@1 first); abstaining when the first is <= 0.
rguard::Certificate with_radii(std::vector<double> rank) {
  rguard::Certificate c;
  c.abstain = !(rank.front() > 0);
  c.radius = c.abstain ? 0.0 : rank.front();
  c.rank_radius = std::move(rank);
  return c;
}
}  // namespace

TEST_CASE("stopping rule on hand-built certificates: stop when certified beyond the largest target or when n cannot reach the next") {
  using rguard::retrievalguard::draws_on;
  const std::vector<double> targets{0.0, 0.05, 0.1};
  // Certified beyond 0.1 at every K: nothing left to gain.
  CHECK_FALSE(draws_on(with_radii({0.12, 0.15}), with_radii({0.3, 0.4}), targets));
  // Holds 0.05 at K = 1 (radius 0.07 > 0.05) but not 0.1; n samples might give 0.11: draw on.
  CHECK(draws_on(with_radii({0.07, 0.2}), with_radii({0.11, 0.3}), targets));
  // The same, but even the optimistic projection stays at 0.09 < 0.1 at K = 1, and K = 2
  // already holds every target: stop.
  CHECK_FALSE(draws_on(with_radii({0.07, 0.2}), with_radii({0.09, 0.3}), targets));
  // A target counts only when the radius is above it: 0.1 exactly does not hold 0.1.
  CHECK(draws_on(with_radii({0.1, 0.2}), with_radii({0.2, 0.3}), targets));
  // Abstaining now; optimistic n cannot even certify r = 0 (radius <= 0) at any K: stop.
  CHECK_FALSE(draws_on(with_radii({0.0, 0.0}), with_radii({-0.01, 0.0}), targets));
  // Abstaining at K = 1, but Recall@2 could reach 0: draw on.
  CHECK(draws_on(with_radii({0.0, 0.0}), with_radii({-0.01, 0.02}), targets));
  // Only the K the run asks about count: Recall@2 could reach 0, but with ks = {1} it is
  // not asked about, and Recall@1 cannot.
  CHECK_FALSE(draws_on(with_radii({0.0, 0.0}), with_radii({-0.01, 0.02}), targets, {1}));
  CHECK(draws_on(with_radii({0.0, 0.0}), with_radii({-0.01, 0.02}), targets, {1, 2}));
  // Without Recall@K radii the Recall@1 radius decides.
  rguard::Certificate now, best;
  now.abstain = false;
  now.radius = 0.06;
  best.abstain = false;
  best.radius = 0.2;
  CHECK(draws_on(now, best, targets));
  best.radius = 0.08;
  CHECK_FALSE(draws_on(now, best, targets));
}
