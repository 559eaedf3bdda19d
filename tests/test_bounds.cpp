// The radii A, B, C against values computed independently (mpmath 1.2.1, 30 digits, from
// the formulas of product.md section 2), edge cases, and the property R_B >= R_A.
#include "prelude.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "geometry.hpp"
#include "rguard/concentration.hpp"
#include "rguard/statistics.hpp"

using rguard::retrievalguard::certified_radii;
using rguard::retrievalguard::QueryGeometry;

namespace {

// Geometry of F-hat against a small explicit gallery; rows with label == query_label
// are positives; p* = the nearest positive.
struct Case {
  Case() = default;
  Case(std::vector<std::vector<double>> g, std::vector<int> l, std::vector<double> f_hat, int label)
      : gallery(std::move(g)), labels(std::move(l)), f(std::move(f_hat)), query_label(label) {}
  std::vector<std::vector<double>> gallery;
  std::vector<int> labels;
  std::vector<double> f;
  int query_label = 0;

  std::vector<double> dot, norm2, gram;
  QueryGeometry geometry() {
    QueryGeometry g;
    const std::size_t n = gallery.size();
    dot.assign(n, 0);
    norm2.assign(n, 0);
    gram.assign(n, 0);
    for (double v : f) g.f_norm2 += v * v;
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t d = 0; d < f.size(); ++d) {
        dot[j] += f[d] * gallery[j][d];
        norm2[j] += gallery[j][d] * gallery[j][d];
      }
      const double d2 = g.f_norm2 - 2 * dot[j] + norm2[j];
      if (labels[j] == query_label && d2 < best) {
        best = d2;
        g.positive = static_cast<std::int64_t>(j);
      } else if (labels[j] != query_label) {
        g.negatives.push_back(static_cast<std::int64_t>(j));
      }
    }
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t d = 0; d < f.size(); ++d) gram[j] += gallery[static_cast<std::size_t>(g.positive)][d] * gallery[j][d];
    g.dot = dot.data();
    g.norm2 = norm2.data();
    g.gram_p = gram.data();
    return g;
  }
};

}  // namespace

TEST_CASE("rho = (1 + sqrt(2 ln(1/alpha))) / sqrt(n)") {
  CHECK(rguard::mcdiarmid_radius(4000, 0.001) == doctest::Approx(0.074581088312761887113).epsilon(1e-14));
  CHECK(rguard::mcdiarmid_radius(100000, 0.001) == doctest::Approx(0.014916217662552377423).epsilon(1e-14));
  CHECK(rguard::mcdiarmid_radius(1, 0.5) == doctest::Approx(2.177410022515474691).epsilon(1e-14));
}

// Reference values computed by a different method than the library's bisection: the
// largest fixed point of the increasing map g(v) = 1 - max(0, ||F-hat|| - t(v))^2, reached
// by iterating g from v = 1 (Python float64, the script is in docs/certificates.md).
TEST_CASE("variance-adaptive rho: reference values") {
  struct Row {
    std::int64_t n;
    double alpha, norm, rho;
  };
  for (const Row& r : {Row{100000, 1e-3, 0.913, 0.00522258215295}, Row{100000, 1e-3, 0.5, 0.0108043143851},
                       Row{4000, 1e-3, 0.913, 0.030260509751}, Row{4000, 1e-3, 0.99, 0.0150324467319},
                       Row{1000, 0.05, 0.7, 0.0691500940817}, Row{100000, 1e-3, 1.0, 0.000405319848576},
                       Row{50, 1e-3, 0.9, 0.643900614868}, Row{25000, 1e-3, 0.913, 0.0108427467869}}) {
    INFO("n " << r.n << " alpha " << r.alpha << " norm " << r.norm);
    CHECK(rguard::bernstein_radius(r.n, r.alpha, r.norm) == doctest::Approx(r.rho).epsilon(1e-9));
  }
}

TEST_CASE("variance-adaptive rho: closed form when F-hat = 0 (no variance information)") {
  // t(1) = a L/(3n) + sqrt((a L/(3n))^2 + 2 L/n), a = 2, L = ln(2/alpha); by hand for
  // n = 1e5, alpha = 1e-3: L = 7.600902459542082, a L/(3n) = 5.067268306e-5.
  CHECK(rguard::bernstein_radius(100000, 1e-3, 0.0) == doctest::Approx(0.0123803367868).epsilon(1e-9));
  const double L = std::log(2000.0), lin = 2 * L / 3e5;
  CHECK(rguard::bernstein_radius(100000, 1e-3, 0.0) == doctest::Approx(lin + std::sqrt(lin * lin + 2 * L / 1e5)).epsilon(1e-13));
}

TEST_CASE("variance-adaptive rho: below McDiarmid for n >= 200 and monotone") {
  for (std::int64_t n : {200, 1000, 4000, 100000, 10000000}) {
    double previous = 1e9;
    for (double norm = 0.0; norm <= 1.0; norm += 0.01) {
      const double rho = rguard::bernstein_radius(n, 1e-3, norm);
      INFO("n " << n << " norm " << norm);
      CHECK(rho < rguard::mcdiarmid_radius(n, 1e-3));
      CHECK(rho <= previous);  // a larger ||F-hat|| leaves less room for variance
      CHECK(rho > 0);
      previous = rho;
    }
  }
  // It scales like sqrt(v/n): a quarter of the samples at v = 1/4 matches v = 1.
  CHECK(rguard::bernstein_radius(25000, 1e-3, 0.9) < rguard::mcdiarmid_radius(100000, 1e-3));
  // Tiny n: the linear term a L/(3n) dominates; at alpha = 1e-3 the crossover is n = 47.
  CHECK(rguard::bernstein_radius(46, 1e-3, 0.0) > rguard::mcdiarmid_radius(46, 1e-3));
  CHECK(rguard::bernstein_radius(47, 1e-3, 0.0) < rguard::mcdiarmid_radius(47, 1e-3));
}

TEST_CASE("directional deviation: Maurer-Pontil reference values") {
  // Python: L = log(2/delta); sqrt(2*v*L/n) + 14*L/(3*(n-1))  (docs/certificates.md, Lemma 1'')
  CHECK(rguard::empirical_bernstein_deviation(25000, 1e-3 / 4e6, 0.005) == doctest::Approx(0.007276788713684876).epsilon(1e-12));
  CHECK(rguard::empirical_bernstein_deviation(4000, 1e-6, 0.1) == doctest::Approx(0.043864861456166596).epsilon(1e-12));
  CHECK(rguard::empirical_bernstein_deviation(2, 0.5, 0.25) == doctest::Approx(7.058078696483893).epsilon(1e-12));
  CHECK(rguard::empirical_bernstein_deviation(100000, 1e-9, 0.0) == doctest::Approx(0.0009994426019096492).epsilon(1e-12));
  CHECK(rguard::empirical_bernstein_deviation(100000, 1e-9, -1e-18) == rguard::empirical_bernstein_deviation(100000, 1e-9, 0.0));
  CHECK(std::isinf(rguard::empirical_bernstein_deviation(1, 0.5, 0.0)));
}

TEST_CASE("the radii rho are rounded up: never below the exact value, and close to it") {
  // mpmath 1.2.1 at 50 digits from the formulas above (alpha as the double it is); the
  // variance-adaptive ones by 200 bisection steps on h(v) = 1 - (||F-hat|| - t(v))^2 - v:
  //   /usr/bin/python3: from mpmath import mp, mpf, sqrt, log; mp.dps = 50
  //   mcd = (1 + sqrt(2 * log(1 / mpf(alpha)))) / sqrt(n)
  //   t(v) = lin + sqrt(lin**2 + 2 * v * L / n), L = log(2 / mpf(alpha)), lin = 2 * L / (3 * n)
  //   eb = sqrt(2 * mpf(var) * L / n) + 14 * L / (3 * (n - 1)), L = log(2 / mpf(delta))
  // Above by more than the reference's own rounding to double (1.1e-16): the slack (16 eps
  // less under 5 eps of rounding) leaves at least 2.4e-15. Above by at most 1e-13, or 1e-11
  // for the variance-adaptive rho, whose bisection counts a v as excluded only 1e-14 below
  // h = 0 (2e-12 at ||F-hat|| = 0.999, where v* = 0.002 is small).
  auto check_above = [](double got, double exact, double within = 1e-13) {
    INFO("got " << got << ", exact " << exact);
    CHECK(got >= exact * (1 + 1e-15));
    CHECK(got <= exact * (1 + within));
  };
  check_above(rguard::mcdiarmid_radius(100000, 1e-10), 0.024621937923061851711);
  check_above(rguard::mcdiarmid_radius(1000000, 1e-300), 0.038169221888498384469);
  check_above(rguard::mcdiarmid_radius(1000000, 1e-10), 0.0077861404244151117925);
  check_above(rguard::mcdiarmid_radius(100000, 1e-300), 0.12070167768400836024);
  check_above(rguard::bernstein_radius(100000, 1e-10, 0.0), 0.021938966083456910875);
  check_above(rguard::bernstein_radius(1000000, 1e-300, 0.0), 0.037651701775785630031);
  check_above(rguard::bernstein_radius(100000, 1e-10, 0.93), 0.0086250463148395894942);
  check_above(rguard::bernstein_radius(1000000, 1e-300, 0.93), 0.015514984287852474463);
  check_above(rguard::bernstein_radius(1000000, 1e-10, 0.999), 0.00037755404640218881225, 1e-11);
  check_above(rguard::empirical_bernstein_deviation(100000, 1e-10, 0.005), 0.0026469949856402986838);
  check_above(rguard::empirical_bernstein_deviation(1000000, 1e-300, 0.1), 0.014986692715181746649);
  check_above(rguard::empirical_bernstein_deviation(1000000, 1e-10, 0.0), 0.0001106887685377704143);
  // The references of the first test case, which come with 20 digits, are bounded alike.
  CHECK(rguard::mcdiarmid_radius(4000, 0.001) >= 0.074581088312761887113);
  CHECK(rguard::mcdiarmid_radius(100000, 0.001) >= 0.014916217662552377423);
  CHECK(rguard::mcdiarmid_radius(1, 0.5) >= 2.177410022515474691);
}

TEST_CASE("directional deviations: the covariance from packed sums and each direction's variance match the samples") {
  // Explicit unit samples in R^3; the sample variance of <f_i, u> computed directly must
  // equal what the deviations were built from.
  const std::vector<std::vector<double>> samples{{1, 0, 0}, {0.6, 0.8, 0}, {0.8, 0, 0.6}, {0, 1, 0}, {0.6, 0, -0.8}};
  const std::int64_t n = 5, k = 3;
  std::vector<double> sum(3, 0.0), squares;
  squares.assign(6, 0.0);
  for (const auto& f : samples) {
    std::size_t packed = 0;
    for (std::size_t a = 0; a < 3; ++a) {
      sum[a] += f[a];
      for (std::size_t b = a; b < 3; ++b) squares[packed++] += f[a] * f[b];
    }
  }
  const auto covariance = rguard::sample_covariance(n, k, sum.data(), squares.data());
  auto variance_along = [&](const std::vector<double>& u) {  // unbiased, from the samples
    double mean = 0, m2 = 0;
    for (const auto& f : samples) mean += (f[0] * u[0] + f[1] * u[1] + f[2] * u[2]) / n;
    for (const auto& f : samples) m2 += std::pow(f[0] * u[0] + f[1] * u[1] + f[2] * u[2] - mean, 2);
    return m2 / (n - 1);
  };
  CHECK(covariance[0] == doctest::Approx(variance_along({1, 0, 0})).epsilon(1e-12));
  CHECK(covariance[1] == covariance[3]);  // symmetric
  Case c{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0.6, 0, 0.8}}, {0, 1, 1, 0}, {sum[0] / n, sum[1] / n, sum[2] / n}, 0};
  auto g = c.geometry();
  REQUIRE(g.positive == 0);
  std::vector<double> flat;
  for (const auto& row : c.gallery) flat.insert(flat.end(), row.begin(), row.end());
  const double alpha = 0.01;
  std::vector<double> pair, item;
  rguard::retrievalguard::set_directional_deviations(g, flat.data(), 4, k, covariance, n, 2, alpha, pair, item);
  const double delta = alpha / (2 * 2 + 2 + 2);  // |P||N| + |P| + |N| directions
  for (std::size_t i = 0; i < g.negatives.size(); ++i) {
    const auto& en = c.gallery[static_cast<std::size_t>(g.negatives[i])];
    std::vector<double> u{1 - en[0], -en[1], -en[2]};
    const double norm = std::sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    for (auto& x : u) x /= norm;
    CHECK(pair[i] == doctest::Approx(rguard::empirical_bernstein_deviation(n, delta, variance_along(u))).epsilon(1e-12));
  }
  for (std::size_t j = 0; j < 4; ++j)
    CHECK(item[j] == doctest::Approx(rguard::empirical_bernstein_deviation(n, delta, variance_along(c.gallery[j]))).epsilon(1e-12));
  // Without a norm radius (rho = inf) A is not certified; B uses the deviations, which at
  // n = 5 exceed every margin.
  const auto r = certified_radii(g, std::numeric_limits<double>::infinity(), 0.5);
  CHECK(r.a == -std::numeric_limits<double>::infinity());
  CHECK(r.b == -std::numeric_limits<double>::infinity());
  CHECK(std::find(pair.begin(), pair.end(), r.b_deviation) != pair.end());  // the binding negative's
}

TEST_CASE("directional deviations equal to rho give the radii of rho") {
  Case c{{{1, 0, 0}, {0.6, 0.8, 0}, {0, 0, 1}, {0, 0.6, 0.8}}, {0, 0, 1, 1}, {0.5, 0.45, 0.2}, 0};
  auto g = c.geometry();
  const auto plain = certified_radii(g, 0.03, 0.25);
  const std::vector<double> pair(g.negatives.size(), 0.03), item(4, 0.03);
  g.pair_deviation = pair.data();
  g.item_deviation = item.data();
  const auto directional = certified_radii(g, std::numeric_limits<double>::infinity(), 0.25);
  CHECK(directional.b == doctest::Approx(plain.b).epsilon(1e-14));
  CHECK(directional.c == doctest::Approx(plain.c).epsilon(1e-14));
  CHECK(directional.b_deviation == 0.03);
}

TEST_CASE("A B C on a two-item gallery (hand case 1)") {
  Case c{{{1, 0}, {0, 1}}, {0, 1}, {0.8, 0.2}, 0};
  const auto r = certified_radii(c.geometry(), 0.05, 0.5);
  CHECK(r.d_pos == doctest::Approx(0.28284271247461901).epsilon(1e-14));
  CHECK(r.d_neg == doctest::Approx(1.131370849898476).epsilon(1e-14));
  CHECK(r.a == doctest::Approx(0.2345352242029399).epsilon(1e-13));
  CHECK(r.b == doctest::Approx(0.24386864761483122).epsilon(1e-13));
  CHECK(r.c == doctest::Approx(0.20792750410290825).epsilon(1e-13));
}

TEST_CASE("A B C with two positives and two negatives (hand case 2)") {
  Case c{{{1, 0, 0}, {0.6, 0.8, 0}, {0, 0, 1}, {0, 0.6, 0.8}}, {0, 0, 1, 1}, {0.5, 0.45, 0.2}, 0};
  auto g = c.geometry();
  CHECK(g.positive == 1);  // the nearer of the two positives
  const auto r = certified_radii(g, 0.03, 0.25);
  CHECK(r.d_pos == doctest::Approx(0.41533119314590377).epsilon(1e-14));
  CHECK(r.d_neg == doctest::Approx(0.79529868602934335).epsilon(1e-14));
  CHECK(r.a == doctest::Approx(0.050127472789026442).epsilon(1e-13));
  CHECK(r.b == doctest::Approx(0.061892719747306161).epsilon(1e-13));
  CHECK(r.c == doctest::Approx(0.03545754662316112).epsilon(1e-13));
}

TEST_CASE("a tie abstains under every bound") {
  Case c{{{1, 0}, {0, 1}}, {0, 1}, {0.5, 0.5}, 0};
  const auto r = certified_radii(c.geometry(), 0.01, 0.5);
  CHECK(r.a < 0);
  CHECK(r.b < 0);
  CHECK(r.c < 0);
}

TEST_CASE("a wrong smoothed prediction abstains - rho eats a small margin") {
  Case wrong{{{1, 0}, {0, 1}}, {0, 1}, {0.2, 0.7}, 0};
  auto r = certified_radii(wrong.geometry(), 0.01, 0.5);
  CHECK(r.a < 0);
  CHECK(r.b < 0);
  CHECK(r.c < 0);
  Case close{{{1, 0}, {0, 1}}, {0, 1}, {0.52, 0.48}, 0};
  r = certified_radii(close.geometry(), 0.0, 0.5);
  CHECK(r.b > 0);
  r = certified_radii(close.geometry(), 0.1, 0.5);  // margin 0.04/sqrt2 < rho
  CHECK(r.a < 0);
  CHECK(r.b < 0);
  CHECK(r.c < 0);
}

TEST_CASE("single positive and no negatives - duplicate positive/negative embedding") {
  Case lone{{{1, 0}}, {0}, {0.9, 0.1}, 0};
  auto r = certified_radii(lone.geometry(), 0.05, 0.25);
  CHECK(std::isinf(r.a));
  CHECK(r.b > 0);
  Case duplicate{{{1, 0}, {1, 0}}, {0, 1}, {0.9, 0.1}, 0};
  r = certified_radii(duplicate.geometry(), 0.05, 0.25);
  CHECK(r.b == -std::numeric_limits<double>::infinity());
  CHECK(r.a < 0);
}

TEST_CASE("radii scale linearly with sigma") {
  Case c{{{1, 0}, {0, 1}}, {0, 1}, {0.8, 0.2}, 0};
  const auto r1 = certified_radii(c.geometry(), 0.05, 0.25);
  const auto r2 = certified_radii(c.geometry(), 0.05, 1.0);
  CHECK(r2.a == doctest::Approx(4 * r1.a));
  CHECK(r2.b == doctest::Approx(4 * r1.b));
  CHECK(r2.c == doctest::Approx(4 * r1.c));
}

TEST_CASE("property: R_B >= R_A whenever R_A > 0 on random unit galleries") {
  std::mt19937_64 rng(12345);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int positive_a = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int dim = 2 + trial % 7, size = 3 + trial % 11;
    Case c;
    for (int j = 0; j < size; ++j) {
      std::vector<double> v(static_cast<std::size_t>(dim));
      double n2 = 0;
      for (auto& x : v) {
        x = normal(rng);
        n2 += x * x;
      }
      for (auto& x : v) x /= std::sqrt(n2);
      c.gallery.push_back(v);
      c.labels.push_back(j == 0 ? 0 : static_cast<int>(uniform(rng) * 3));
    }
    // F-hat: a point of the unit ball pulled toward the first (positive) row.
    c.f.assign(static_cast<std::size_t>(dim), 0.0);
    const double pull = uniform(rng);
    double n2 = 0;
    for (int d = 0; d < dim; ++d) {
      c.f[d] = pull * c.gallery[0][d] + 0.3 * normal(rng);
      n2 += c.f[d] * c.f[d];
    }
    if (n2 > 1) for (auto& x : c.f) x /= std::sqrt(n2);
    const auto r = certified_radii(c.geometry(), 0.2 * uniform(rng), 0.1 + uniform(rng));
    if (r.a > 0 && std::isfinite(r.a)) {
      ++positive_a;
      INFO("trial " << trial << ": A " << r.a << " B " << r.b);
      CHECK(r.b >= r.a - 1e-12);
    }
  }
  CHECK(positive_a > 300);  // the property was exercised, not vacuously true
}

TEST_CASE("binomial upper quantile against exact sums (Python math.comb)") {
  // Smallest k with P(Binomial(n, p) > k) <= tail; reference values summed exactly in Python.
  CHECK(rguard::binomial_upper_quantile(100, 0.01, 1e-3) == 5);
  CHECK(rguard::binomial_upper_quantile(1000, 0.002, 1e-3) == 8);
  CHECK(rguard::binomial_upper_quantile(96, 0.002, 1e-3) == 2);
  CHECK(rguard::binomial_upper_quantile(10, 0.5, 1e-3) == 9);
  CHECK(rguard::binomial_upper_quantile(0, 0.1, 1e-3) == 0);
}
