// Coverage of the McDiarmid and Bernstein bounds by simulation: for f with a known mean F
// and values in the unit ball, ||F-hat - F|| <= rho must hold in >= 1 - alpha of the
// repetitions. Shrunk radii must fail the same simulation, so the test can fail.
#include "prelude.hpp"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "rguard/bounds.hpp"

namespace {

// f takes value atoms[i] (unit vectors) with probability weights[i].
struct Discrete {
  std::vector<std::vector<double>> atoms;
  std::vector<double> weights;
  std::vector<double> mean() const {
    std::vector<double> m(atoms[0].size(), 0.0);
    for (std::size_t i = 0; i < atoms.size(); ++i)
      for (std::size_t d = 0; d < m.size(); ++d) m[d] += weights[i] * atoms[i][d];
    return m;
  }
};

// Fraction of repetitions with ||F-hat - F|| > radius(||F-hat||).
template <class Radius>
double failure_rate(const Discrete& f, int n, Radius radius, int repetitions, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::discrete_distribution<int> pick(f.weights.begin(), f.weights.end());
  const auto mean = f.mean();
  int failures = 0;
  for (int r = 0; r < repetitions; ++r) {
    std::vector<double> sum(mean.size(), 0.0);
    for (int i = 0; i < n; ++i) {
      const auto& atom = f.atoms[static_cast<std::size_t>(pick(rng))];
      for (std::size_t d = 0; d < sum.size(); ++d) sum[d] += atom[d];
    }
    double dist2 = 0, norm2 = 0;
    for (std::size_t d = 0; d < sum.size(); ++d) {
      dist2 += std::pow(sum[d] / n - mean[d], 2);
      norm2 += std::pow(sum[d] / n, 2);
    }
    failures += std::sqrt(dist2) > radius(std::sqrt(norm2));
  }
  return static_cast<double>(failures) / repetitions;
}

}  // namespace

TEST_CASE("coverage: antipodal f (largest variance) several alpha and n") {
  const Discrete f{{{1, 0, 0}, {-1, 0, 0}}, {0.5, 0.5}};
  for (double alpha : {0.5, 0.2, 0.05}) {
    for (int n : {25, 400}) {
      const double rho = rguard::mcdiarmid_radius(n, alpha);
      const double rate = failure_rate(f, n, [&](double) { return rho; }, 4000, 7);
      INFO("alpha " << alpha << " n " << n << " failure rate " << rate);
      CHECK(rate <= alpha);
    }
  }
}

TEST_CASE("coverage: spread over many orthogonal directions uneven weights") {
  Discrete f;
  for (int i = 0; i < 16; ++i) {
    std::vector<double> atom(16, 0.0);
    atom[static_cast<std::size_t>(i)] = i % 2 ? 1.0 : -1.0;
    f.atoms.push_back(atom);
    f.weights.push_back((1.0 + i) / 136.0);  // sums to 1
  }
  for (double alpha : {0.3, 0.1}) {
    const double rho = rguard::mcdiarmid_radius(200, alpha);
    const double rate = failure_rate(f, 200, [&](double) { return rho; }, 3000, 11);
    INFO("alpha " << alpha << " failure rate " << rate);
    CHECK(rate <= alpha);
  }
}

TEST_CASE("the coverage check detects a radius that is too small") {
  const Discrete f{{{1, 0, 0}, {-1, 0, 0}}, {0.5, 0.5}};
  const double alpha = 0.2;
  const double rho = rguard::mcdiarmid_radius(100, alpha) / 4;
  const double rate = failure_rate(f, 100, [&](double) { return rho; }, 4000, 3);
  INFO("failure rate with rho/4: " << rate);
  CHECK(rate > alpha);
}

namespace {

// Unit vectors: a cluster around e_0 (weight `stay`) and the rest spread over `others`
// orthogonal directions, like noisy embeddings that mostly stay near the clean one.
Discrete clustered(int dim, double stay, int others) {
  Discrete f;
  std::vector<double> home(static_cast<std::size_t>(dim), 0.0);
  home[0] = 1.0;
  f.atoms.push_back(home);
  f.weights.push_back(stay);
  for (int i = 1; i <= others; ++i) {
    std::vector<double> atom(static_cast<std::size_t>(dim), 0.0);
    atom[0] = 0.6;
    atom[static_cast<std::size_t>(i)] = i % 2 ? 0.8 : -0.8;
    f.atoms.push_back(atom);
    f.weights.push_back((1.0 - stay) / others);
  }
  return f;
}

}  // namespace

TEST_CASE("coverage of the variance-adaptive bound: several F and spreads") {
  struct Setup {
    const char* name;
    Discrete f;
    int n;
  };
  const std::vector<Setup> setups{
      {"antipodal 50/50 (F = 0 largest variance)", {{{1, 0, 0}, {-1, 0, 0}}, {0.5, 0.5}}, 400},
      {"antipodal 90/10 (||F|| = 0.8, one direction)", {{{1, 0, 0}, {-1, 0, 0}}, {0.9, 0.1}}, 400},
      {"antipodal 99/1 (||F|| = 0.98, rare far values)", {{{1, 0}, {-1, 0}}, {0.99, 0.01}}, 2000},
      {"cluster 95% at e0, rest over 8 directions", clustered(9, 0.95, 8), 1000},
      {"cluster 70% at e0, rest over 16 directions", clustered(17, 0.70, 16), 300},
  };
  for (const auto& setup : setups) {
    for (double alpha : {0.2, 0.05}) {
      const double rate = failure_rate(
          setup.f, setup.n, [&](double norm) { return rguard::bernstein_radius(setup.n, alpha, norm); }, 4000, 19);
      INFO(std::string(setup.name) << ": alpha " << alpha << " failure rate " << rate);
      CHECK(rate <= alpha);
    }
  }
}

TEST_CASE("the coverage check detects a variance-adaptive radius that is too small") {
  // A third of the radius fails where the variance is small: the check sees the
  // adaptation (Bernstein's ln(2/alpha) is loose at alpha = 0.2, so half would still pass).
  const Discrete f{{{1, 0, 0}, {-1, 0, 0}}, {0.9, 0.1}};
  const double alpha = 0.2;
  const double rate = failure_rate(f, 400, [&](double norm) { return rguard::bernstein_radius(400, alpha, norm) / 3; }, 4000, 5);
  INFO("failure rate with rho/3: " << rate);
  CHECK(rate > alpha);
}
