// Certificate D's statistics (docs/certificates.md, Theorem D): Clopper-Pearson against
// scipy, the level-set radius against closed forms, D >= B with exact probabilities on
// grid-valued statistics, and the coverage of the simultaneous event by simulation (with
// a check that fails when the union bound's slack is taken away).
#include "prelude.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "level_sets.hpp"
#include "rguard/concentration.hpp"
#include "rguard/normal.hpp"

namespace rg = rguard::retrievalguard;

TEST_CASE("Clopper-Pearson lower bound against exact binomial tails - never above them") {
  // The p with P(Binomial(n, p) >= k) = alpha, by bisection to 30 digits on the upper tail
  // summed term by term in mpmath 1.2.1 at 50 digits (/usr/bin/python3):
  //   from mpmath import mp, mpf, binomial; mp.dps = 50
  //   def tail(k, n, p):  # terms fall from j = k on for p < k/n
  //       term = binomial(n, k) * p**k * (1 - p)**(n - k); total, j = term, k
  //       while j < n and term > total * mpf(10)**-55:
  //           term *= mpf(n - j) / (j + 1) * p / (1 - p); total += term; j += 1
  //       return total
  // bracketed around scipy 1.10.1's stats.beta.ppf(alpha, k, n - k + 1), or on log p in
  // (1e-400, k/n) where scipy is wrong (k = 10, n = 1e5, alpha = 1e-300: scipy 2.3e-32);
  // alpha^(1/n) = exp(log(mpf(alpha)) / n) at k = n. Elsewhere scipy agrees to 1.4e-15.
  struct Case {
    std::int64_t k, n;
    double alpha, exact;
  };
  const Case cases[] = {
      {1, 10, 0.05, 0.0051161968918237014254},
      {5, 10, 0.05, 0.22244110100812908173},
      {3990, 4000, 1e-6, 0.99141927269204157761},
      {2000, 4000, 2e-6, 0.46346994417031035005},
      {1, 4000, 1e-3, 2.5012505211460731642e-7},
      {99999, 100000, 1e-3, 0.99990766966626544598},
      {50, 100, 0.001, 0.34479800642531775688},
      {9990, 10000, 1.953125e-06, 0.99665456124399227262},
      // Extremes: n = 1e5 and 1e6, k near n, alpha = 1e-10 and 1e-300.
      {99990, 100000, 1e-10, 0.99953443891121743305},
      {50000, 100000, 1e-300, 0.44161900378439148712},
      {100000, 100000, 1e-10, 0.99976976799815658635},
      {10, 100000, 1e-300, 4.5289324919471711223e-35},
      {1, 1000000, 1e-10, 1.0000000000499999864e-16},
      {500000, 1000000, 1e-10, 0.49681886253510562951},
      {999000, 1000000, 1e-10, 0.99878453103936890201},
      {999999, 1000000, 1e-300, 0.99930291851420521688},
      {1000000, 1000000, 1e-300, 0.99930946300258992169},
  };
  for (const auto& c : cases) {
    const double got = rguard::clopper_pearson_lower(c.k, c.n, c.alpha);
    INFO("k = ", c.k, " n = ", c.n, " alpha = ", c.alpha, " got ", got, " exact ", c.exact);
    // Below by more than the reference's rounding to double, and by at most 1e-13.
    CHECK(got <= c.exact * (1 - 1e-15));
    CHECK(got >= c.exact * (1 - 1e-13));
    // Its defining property, with Boost's incomplete beta: I_p(k, n - k + 1) < alpha.
    const auto k = static_cast<double>(std::min(c.k, c.n));
    CHECK(rguard::incomplete_beta(k, static_cast<double>(c.n) - k + 1, got) < c.alpha);
  }
  CHECK(rguard::clopper_pearson_lower(0, 100, 0.01) == 0.0);
  CHECK(rguard::clopper_pearson_lower(100, 100, 0.01) < std::pow(0.01, 1.0 / 100));
  CHECK(rguard::clopper_pearson_lower(100, 100, 0.01) == doctest::Approx(std::pow(0.01, 1.0 / 100)).epsilon(1e-13));
  // No bound to take: 0, which bounds every probability.
  CHECK(rguard::clopper_pearson_lower(5, 0, 0.01) == 0.0);
  CHECK(rguard::clopper_pearson_lower(5, 10, 0.0) == 0.0);
  CHECK(rguard::clopper_pearson_lower(5, 10, 1.0) == 0.0);
  CHECK(rguard::clopper_pearson_lower(5, 10, std::nan("")) == 0.0);
}

TEST_CASE("incomplete beta at its edges") {
  CHECK(rguard::incomplete_beta(2.0, 3.0, 0.0) == 0.0);
  CHECK(rguard::incomplete_beta(2.0, 3.0, -1.0) == 0.0);
  CHECK(rguard::incomplete_beta(2.0, 3.0, 1.0) == 1.0);
  CHECK(std::isnan(rguard::incomplete_beta(2.0, 3.0, std::nan(""))));
  CHECK(std::isnan(rguard::incomplete_beta(-1.0, 3.0, 0.5)));
  // I_x(2, 3) = P(Binomial(4, x) >= 2): 11/16 at x = 1/2.
  CHECK(rguard::incomplete_beta(2.0, 3.0, 0.5) == doctest::Approx(0.6875).epsilon(1e-15));
}

TEST_CASE("level-set radius: a point mass at 0.5 on a grid of 19 levels (closed form)") {
  // Z = 0.5 always; levels -1 + 2i/20, i = 1..19; Clopper-Pearson at alpha' = 0.001/20 with
  // n = 10,000: p = alpha'^(1/n) up to the level 0.5, 0 above. Then LS(r) = -1 + 1.5 g(p),
  // and R = sigma (Phi^-1(p) - Phi^-1(2/3)) = 0.6656327643820444 (scipy, sigma = 0.25).
  std::vector<double> levels, counts;
  for (int i = 1; i <= 19; ++i) {
    levels.push_back(-1 + 2.0 * i / 20);
    counts.push_back(levels.back() <= 0.5 + 1e-12 ? 10000 : 0);
  }
  const auto p = rg::level_probabilities(counts, 10000, 0.001 / 20);
  CHECK(p[0] == doctest::Approx(0.9990101414782275).epsilon(1e-12));
  CHECK(rg::level_set_radius(-1.0, levels, p, 0.0, 0.25) == doctest::Approx(0.6656327643820444).epsilon(1e-9));
  // With exact probabilities (p = 1 up to 0.5) every radius is certified: LS stays at 0.5.
  std::vector<double> exact(levels.size());
  for (std::size_t i = 0; i < levels.size(); ++i) exact[i] = counts[i] > 0 ? 1.0 : 0.0;
  CHECK(std::isinf(rg::level_set_radius(-1.0, levels, exact, 0.0, 0.25)));
  // ... but not above its value: the threshold 0.6 is never exceeded.
  CHECK(rg::level_set_radius(-1.0, levels, exact, 0.6, 0.25) == 0.0);
}

TEST_CASE("level-set radius: a two-point law beats the mean-only bound (closed forms)") {
  // Z = 0.8 w.p. 0.9, -0.6 w.p. 0.1, sigma = 0.5, levels -0.9, -0.8, ..., 0.9, exact
  // probabilities. LS(r) = -0.6 + 1.4 g(0.9) > 0 until r = sigma (Phi^-1(0.9) - Phi^-1(3/7))
  // = 0.7307819676686528; the mean-only radius sigma Phi^-1((1 + 0.66)/2) = 0.47708262657309713.
  std::vector<double> levels, p;
  for (int i = -9; i <= 9; ++i) {
    levels.push_back(i / 10.0);
    p.push_back(levels.back() <= -0.6 + 1e-12 ? 1.0 : levels.back() <= 0.8 + 1e-12 ? 0.9 : 0.0);
  }
  const double d = rg::level_set_radius(-1.0, levels, p, 0.0, 0.5);
  CHECK(d == doctest::Approx(0.7307819676686528).epsilon(1e-10));
  const double mean_only = 0.5 * rguard::normal_quantile(0.5 * (1 + 0.66));
  CHECK(mean_only == doctest::Approx(0.47708262657309713).epsilon(1e-12));
  CHECK(d > mean_only);
  // The bound at r = 0 is the (discretised) mean: -0.6 + 1.4 x 0.9 = 0.66.
  CHECK(rg::level_set_lower_mean(-1.0, levels, p, 0.0) == doctest::Approx(0.66).epsilon(1e-12));
}

TEST_CASE("with exact probabilities D is never below the mean-only bound on grid-valued statistics") {
  // Jensen on the convex p -> Phi(Phi^-1(p) - c) (docs/certificates.md): for Z on the grid
  // the level-set bound dominates sigma Phi^-1((1 + E Z)/2).
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int dominated = 0;
  for (int trial = 0; trial < 500; ++trial) {
    const int k = 4 + static_cast<int>(uniform(rng) * 30);
    std::vector<double> grid, mass(static_cast<std::size_t>(k) + 1);
    for (int i = 0; i <= k; ++i) grid.push_back(-1 + 2.0 * i / k);  // Z takes these values
    double total = 0;
    for (auto& m : mass) total += m = std::pow(uniform(rng), 4);  // uneven laws
    double mean = 0;
    for (std::size_t i = 0; i < mass.size(); ++i) mean += (mass[i] /= total) * grid[i];
    if (mean <= 0) continue;
    // Levels at the grid points above -1; p_i = P(Z >= t_i).
    std::vector<double> levels(grid.begin() + 1, grid.end()), p(levels.size());
    for (std::size_t i = 0; i < levels.size(); ++i)
      for (std::size_t j = i + 1; j < mass.size(); ++j) p[i] += mass[j];
    for (double& v : p) v = std::min(v, 1.0);
    const double sigma = 0.1 + uniform(rng);
    const double d = rg::level_set_radius(-1.0, levels, p, 0.0, sigma);
    const double b = sigma * rguard::normal_quantile(0.5 * (1 + mean));
    CHECK(d >= b - 1e-9 * std::max(1.0, b));
    ++dominated;
  }
  CHECK(dominated > 200);
}

namespace {

// The fraction of repetitions in which some level's Clopper-Pearson bound at alpha_each
// exceeds its true probability: Z on 5 values, 8 levels, n = 200 samples.
double simultaneous_failure_rate(double alpha_each, int repetitions) {
  const std::vector<double> values{-0.5, -0.1, 0.2, 0.4, 0.7}, weights{0.1, 0.15, 0.3, 0.25, 0.2};
  const std::vector<double> levels{-0.6, -0.3, -0.05, 0.1, 0.3, 0.5, 0.6, 0.65};
  std::vector<double> truth(levels.size(), 0.0);
  for (std::size_t i = 0; i < levels.size(); ++i)
    for (std::size_t v = 0; v < values.size(); ++v) truth[i] += values[v] >= levels[i] ? weights[v] : 0.0;
  std::mt19937_64 rng(11);
  std::discrete_distribution<int> draw(weights.begin(), weights.end());
  int failures = 0;
  for (int rep = 0; rep < repetitions; ++rep) {
    std::vector<double> counts(levels.size(), 0.0);
    for (int s = 0; s < 200; ++s) {
      const double z = values[static_cast<std::size_t>(draw(rng))];
      for (std::size_t i = 0; i < levels.size(); ++i) counts[i] += z >= levels[i];
    }
    const auto p = rg::level_probabilities(counts, 200, alpha_each);
    bool failed = false;
    for (std::size_t i = 0; i < levels.size(); ++i) failed |= p[i] > truth[i];
    failures += failed;
  }
  return static_cast<double>(failures) / repetitions;
}

}  // namespace

TEST_CASE("coverage: the per-level bounds hold together in at least 1 - alpha of repetitions") {
  const double alpha = 0.1;
  const int repetitions = 4000;
  // Union bound over the 8 levels: alpha / 8 each. Allowed: alpha plus 3 binomial sd.
  const double with_union = simultaneous_failure_rate(alpha / 8, repetitions);
  MESSAGE("failure rate with the union bound: " << with_union);
  CHECK(with_union <= alpha + 3 * std::sqrt(alpha * (1 - alpha) / repetitions));
  // Without it (alpha per level) the same check fails: the test can tell.
  const double without = simultaneous_failure_rate(alpha, repetitions);
  MESSAGE("failure rate at alpha per level: " << without);
  CHECK(without > alpha + 3 * std::sqrt(alpha * (1 - alpha) / repetitions));
}

TEST_CASE("the stopping rule's projected counts: the counts themselves at their own size, unbiased when scaled") {
  // No lean and no more samples: every count of every size up to 400 comes back as it is
  // (flooring c / N * N lost one for 15 of 22, 13 of 23, ...).
  for (std::int64_t n = 1; n <= 400; ++n) {
    std::vector<double> counts;
    for (std::int64_t c = 0; c <= n; ++c) counts.push_back(static_cast<double>(c));
    const std::vector<double> upper(counts.size(), 1.0);
    REQUIRE(rg::projected_counts(counts, n, upper, 0.0, n) == counts);
  }
  // Scaled to a larger final count without a lean, a count projects to the nearest of
  // c * final / count: over the counts 0 .. 5696 of 5696 at 50,000, the mean error is
  // within 0.01 of a count (flooring: -0.5) and no error exceeds half a count.
  const std::int64_t count = 5696, final_count = 50000;
  std::vector<double> counts;
  for (std::int64_t c = 0; c <= count; ++c) counts.push_back(static_cast<double>(c));
  const auto projected = rg::projected_counts(counts, count, std::vector<double>(counts.size(), 1.0), 0.0, final_count);
  double error_sum = 0, worst = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double error = projected[i] - counts[i] * static_cast<double>(final_count) / static_cast<double>(count);
    error_sum += error;
    worst = std::max(worst, std::abs(error));
  }
  CHECK(std::abs(error_sum / static_cast<double>(counts.size())) < 0.01);
  CHECK(worst <= 0.5 + 1e-9);
  // The lean: carried 1 moves each fraction all the way to its upper bound (then capped at
  // final_count), carried 0.5 halfway: 10 of 100 toward 0.3 is 0.2 of 1000, i.e. 200.
  CHECK(rg::projected_counts({10.0}, 100, {0.3}, 1.0, 1000) == std::vector<double>{300.0});
  CHECK(rg::projected_counts({10.0}, 100, {0.3}, 0.5, 1000) == std::vector<double>{200.0});
  CHECK(rg::projected_counts({99.0}, 100, {1.0}, 1.0, 1000) == std::vector<double>{1000.0});
  CHECK(rg::projected_counts({99.0}, 100, {1.0}, 0.0, 1000) == std::vector<double>{990.0});
}
