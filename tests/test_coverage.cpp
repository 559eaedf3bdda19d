// Coverage of the McDiarmid bound by simulation: for f with a known mean F and values in
// the unit ball, ||F-hat - F|| <= rho(n, alpha) must hold in >= 1 - alpha of the
// repetitions. The same simulation with rho / 4 must fail, so the test can fail.
#include "prelude.hpp"

#include <cmath>
#include <random>
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

// Fraction of repetitions with ||F-hat - F|| > radius.
double failure_rate(const Discrete& f, int n, double radius, int repetitions, std::uint64_t seed) {
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
    double dist2 = 0;
    for (std::size_t d = 0; d < sum.size(); ++d) dist2 += std::pow(sum[d] / n - mean[d], 2);
    failures += std::sqrt(dist2) > radius;
  }
  return static_cast<double>(failures) / repetitions;
}

}  // namespace

TEST_CASE("coverage: antipodal f (largest variance) several alpha and n") {
  const Discrete f{{{1, 0, 0}, {-1, 0, 0}}, {0.5, 0.5}};
  for (double alpha : {0.5, 0.2, 0.05}) {
    for (int n : {25, 400}) {
      const double rho = rguard::mcdiarmid_radius(n, alpha);
      const double rate = failure_rate(f, n, rho, 4000, 7);
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
    const double rate = failure_rate(f, 200, rho, 3000, 11);
    INFO("alpha " << alpha << " failure rate " << rate);
    CHECK(rate <= alpha);
  }
}

TEST_CASE("the coverage check detects a radius that is too small") {
  const Discrete f{{{1, 0, 0}, {-1, 0, 0}}, {0.5, 0.5}};
  const double alpha = 0.2;
  const double rate = failure_rate(f, 100, rguard::mcdiarmid_radius(100, alpha) / 4, 4000, 3);
  INFO("failure rate with rho/4: " << rate);
  CHECK(rate > alpha);
}
