// retrievalguard: certified l2 radii for smoothed 1-NN retrieval (product.md section 2).
// The statistics and bounds live in core (rguard/bounds.hpp) where they are unit-tested;
// this plugin picks p*, assembles the geometry of one query and chooses the radius.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "rguard/bounds.hpp"
#include "rguard/certifier.hpp"
#include "rguard/error.hpp"
#include "rguard/noise.hpp"

namespace {

using rguard::ParamSpec;
using rguard::ParamType;

class RetrievalGuard final : public rguard::Certifier {
 public:
  explicit RetrievalGuard(const rguard::Params& p)
      : plan_{p.get_int("n"), p.get_int("batch"), p.get_int("queries"), p.get_string("bound") == "directional"},
        alpha_(p.get_float("alpha")),
        choice_(p.get_string("radius")),
        bound_(p.get_string("bound")) {}

  rguard::SamplingPlan plan() const override { return plan_; }
  double alpha() const override { return alpha_; }

  void check_noise(const rguard::Noise& noise) const override {
    if (std::strcmp(noise.family(), "gaussian") != 0)
      throw rguard::Error(fmt::format(
          "certifier retrievalguard: its theorem covers Gaussian noise only, but the noise plugin is '{}'; "
          "use noise: {{plugin: gaussian, sigma: ...}}",
          noise.family()));
  }

  rguard::Certificate certify(const rguard::QueryStats& stats, const rguard::GalleryView& gallery,
                              double sigma) const override {
    const std::int64_t g = gallery.size, k = gallery.dim;
    rguard::Certificate c;
    c.query_id = stats.query_id;
    c.label = stats.label;
    c.n = stats.n;

    std::vector<double> f(static_cast<std::size_t>(k));
    double f_norm2 = 0;
    for (std::int64_t d = 0; d < k; ++d) {
      f[d] = stats.sum[d] / static_cast<double>(stats.n);
      f_norm2 += f[d] * f[d];
    }
    c.f_norm = std::sqrt(f_norm2);
    // The directional bound has no norm radius: it bounds each direction the radii use.
    c.rho = bound_ == "bernstein"    ? rguard::bernstein_radius(stats.n, alpha_, c.f_norm)
            : bound_ == "mcdiarmid" ? rguard::mcdiarmid_radius(stats.n, alpha_)
                                    : std::numeric_limits<double>::infinity();

    // The gallery rows renormalised in double: the bounds assume unit vectors exactly.
    std::vector<double> local;
    if (!gallery.unit) local = rguard::unit_rows(gallery.embedding, g, k);
    const double* e = gallery.unit ? gallery.unit : local.data();
    std::vector<double> dot(static_cast<std::size_t>(g)), norm2(static_cast<std::size_t>(g), 1.0),
        gram_p(static_cast<std::size_t>(g));
    for (std::int64_t j = 0; j < g; ++j) {
      double s = 0;
      for (std::int64_t d = 0; d < k; ++d) s += e[j * k + d] * f[d];
      dot[j] = s;
    }

    rguard::QueryGeometry geometry;
    geometry.f_norm2 = f_norm2;
    std::int64_t positives = 0;
    double best_pos = std::numeric_limits<double>::infinity(), best_any = best_pos;
    for (std::int64_t j = 0; j < g; ++j) {
      if (j == stats.gallery_index) continue;
      const double distance2 = f_norm2 - 2.0 * dot[j] + 1.0;  // ||F-hat - e_j||^2
      if (distance2 < best_any) {
        best_any = distance2;
        c.predict_index = j;
      }
      if (gallery.label[j] == stats.label) {
        ++positives;
        if (distance2 < best_pos) {
          best_pos = distance2;
          geometry.positive = j;
        }
      } else {
        geometry.negatives.push_back(j);
      }
    }
    if (c.predict_index >= 0) c.predict_label = gallery.label[c.predict_index];
    c.correct = c.predict_index >= 0 && c.predict_label == stats.label;
    if (geometry.positive < 0) return c;  // no positive: nothing to certify (abstain)

    const double* ep = e + geometry.positive * k;
    for (std::int64_t j = 0; j < g; ++j) {
      double s = 0;
      for (std::int64_t d = 0; d < k; ++d) s += ep[d] * e[j * k + d];
      gram_p[j] = s;
    }
    geometry.dot = dot.data();
    geometry.norm2 = norm2.data();
    geometry.gram_p = gram_p.data();
    std::vector<double> pair_deviation, item_deviation;
    if (plan_.second_moments) {
      if (!stats.sum_squares)
        throw rguard::Error("certifier retrievalguard: bound 'directional' needs the samples' second moments, "
                            "which this block does not have");
      rguard::set_directional_deviations(geometry, e, g, k, rguard::sample_covariance(stats.n, k, stats.sum, stats.sum_squares),
                                         stats.n, positives, alpha_, pair_deviation, item_deviation);
    }
    const rguard::Radii r = rguard::certified_radii(geometry, c.rho, sigma);
    if (plan_.second_moments) c.rho = r.b_deviation;  // the deviation at the negative that bounds R_B
    c.d_pos = r.d_pos;
    c.d_neg = r.d_neg;
    c.radius_a = r.a;
    c.radius_b = r.b;
    c.radius_c = r.c;
    const double chosen = choice_ == "a" ? r.a : choice_ == "b" ? r.b : choice_ == "c" ? r.c : std::max({r.a, r.b, r.c});
    // Each positive radius implies F-hat is nearer a positive than every negative, so a
    // certified query is always correct; requiring it guards against rounding only.
    c.abstain = !(chosen > 0) || !c.correct;
    c.radius = c.abstain ? 0.0 : chosen;
    return c;
  }

 private:
  rguard::SamplingPlan plan_;
  double alpha_;
  std::string choice_;
  std::string bound_;
};

std::vector<ParamSpec> schema() {
  return {
      {.name = "n", .type = ParamType::Int, .default_value = "100000", .doc = "Monte-Carlo samples per query", .min = 1},
      {.name = "alpha", .type = ParamType::Float, .default_value = "0.001",
       .doc = "failure probability of each certificate", .min = 0, .max = 1, .min_exclusive = true, .max_exclusive = true},
      {.name = "batch", .type = ParamType::Int, .default_value = "256",
       .doc = "noisy images per forward pass (several queries share one when n is small); "
              "256 suits 28x28 images, 32-128 suit 224x224 (docs/performance.md)", .min = 1},
      {.name = "queries", .type = ParamType::Int, .default_value = "0",
       .doc = "queries to certify, a seeded sample of those with a positive; 0 = all", .min = 0},
      {.name = "radius", .type = ParamType::String, .default_value = "max",
       .doc = "reported radius: max of A, B, C (sound), or one of them", .choices = "max|a|b|c"},
      {.name = "bound", .type = ParamType::String, .default_value = "bernstein",
       .doc = "how far F-hat may be from F: bernstein (variance-adaptive, on ||F-hat - F||), mcdiarmid (worst case), "
              "or directional (empirical Bernstein on each direction the radii use; needs the samples' second moments "
              "and certifies B and C, not A); docs/certificates.md",
       .choices = "bernstein|mcdiarmid|directional"},
  };
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Certifier, "retrievalguard", "1.2",
              "RetrievalGuard certified l2 radii A, B, C for smoothed 1-NN retrieval", RetrievalGuard, schema())
