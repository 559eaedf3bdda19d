// retrievalguard: certified l2 radii for smoothed 1-NN retrieval and certified Recall@K
// (product.md section 2; proofs in docs/certificates.md). It declares what is kept of each
// query's noise (the sum, the second moments for the directional bound, and the level
// counts of certificate D, placed from the selection samples), and with sequential sampling
// decides which queries draw on (Theorem S). The bounds: geometry.hpp (A, B, C),
// level_sets.hpp with margin_levels.hpp or pair_levels.hpp (D); its parameters: schema.hpp;
// a query's certificate: certify.cpp and level_radii.cpp.
#include "retrievalguard.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "margin_levels.hpp"
#include "pair_levels.hpp"
#include "schema.hpp"
#include "selection.hpp"
#include "stopping.hpp"
#include "rguard/error.hpp"
#include "rguard/noise.hpp"

namespace rguard::retrievalguard {

RetrievalGuard::RetrievalGuard(const rguard::Params& p)
    : plan_{p.get_int("n"), p.get_int("selection"), p.get_int("batch"), p.get_int("queries")},
      alpha_(p.get_float("alpha")),
      choice_(p.get_string("radius")),
      bound_(p.get_string("bound")),
      margin_(p.get_string("level_statistic") == "margin"),
      candidates_(p.get_int("candidates")),
      levels_(p.get_int("levels")),
      grid_(p.get_string("level_placement") == "grid"),
      pool_(p.get_int("pool")),
      every_(p.get_int("level_every")),
      ranks_(p.get_int("ranks")),
      sequential_(p.get_string("sampling") == "sequential"),
      optimism_(p.get_float("optimism")),
      targets_(p.get_float_list("target_radii")),
      target_ranks_(p.get_int_list("target_ranks")) {
  if (margin_ && pool_ > 0 && pool_ < ranks_)
    throw rguard::Error(fmt::format("certifier.pool: {} negatives cannot hold the {} that certified Recall@{} leaves "
                                    "out; set pool >= ranks ({}) or 0 (every negative)",
                                    pool_, ranks_ - 1, ranks_, ranks_));
  if (margin_ && grid_)
    throw rguard::Error("certifier.level_placement: 'grid' is for level_statistic: pairs; the margin's levels are "
                        "placed from the selection samples");
  // D is the only certificate that needs the selection samples; without it alpha is not split.
  if (choice_ != "max" && choice_ != "d") plan_.selection = 0;
  if (choice_ == "d" && plan_.selection == 0)
    throw rguard::Error("certifier.radius: 'd' needs the selection phase that places the levels; set certifier.selection "
                        "> 0 (100 is Cohen et al.'s n0)");
  if (plan_.selection == 1)
    throw rguard::Error("certifier.selection: 1 sample gives no spread to place levels with; use 0 (no certificate D) or "
                        "at least 2 (100 is Cohen et al.'s n0)");
  std::sort(targets_.begin(), targets_.end());
  if (sequential_) {
    if (targets_.empty())
      throw rguard::Error("certifier.target_radii: sampling: sequential stops each query by the radii the run asks "
                          "about; list them, e.g. target_radii: [0, 0.05, 0.1] (the certified_recall radii)");
    schedule_ = rguard::geometric_schedule(std::min(p.get_int("first_look"), plan_.n), p.get_float("growth"), plan_.n, alpha_,
                                           p.get_float("alpha_at_n"),
                                           std::max<std::int64_t>(1, std::llround(p.get_float("max_step_share") *
                                                                                  static_cast<double>(plan_.n))));
    plan_.looks = schedule_.sizes;
    for (const auto k : target_ranks_)
      if (k > ranks_)
        throw rguard::Error(fmt::format("certifier.target_ranks: K = {} is above certifier.ranks = {}, whose Recall@K "
                                        "radii are all a query keeps; raise ranks or drop K",
                                        k, ranks_));
  }
}

void RetrievalGuard::check_noise(const rguard::Noise& noise) const {
  if (std::strcmp(noise.family(), "gaussian") != 0)
    throw rguard::Error(fmt::format(
        "certifier retrievalguard: its theorem covers Gaussian noise only, but the noise plugin is '{}'; "
        "use noise: {{plugin: gaussian, sigma: ...}}",
        noise.family()));
}

std::string RetrievalGuard::statistics_id(const rguard::GalleryView& gallery) const {
  std::string id = rguard::statistics_id(selection_statistics(gallery)) + ";" + rguard::sum_statistic(gallery.dim)->id();
  if (directional()) id += "+" + rguard::second_moment_statistic(gallery.dim)->id();
  if (level_sets())
    id += "+" + (margin_ ? rg::MarginLevelCounts::make_id(gallery.dim, ranks_, levels_, pool_, every_)
                         : rg::PairLevelCounts::make_id(gallery.dim, candidates_, levels_, grid_));
  return id;
}

rguard::Statistics RetrievalGuard::selection_statistics(const rguard::GalleryView& gallery) const {
  if (!level_sets()) return {};
  return {rguard::samples_statistic(plan_.selection, gallery.dim)};
}

RetrievalGuard::Look RetrievalGuard::look_for(std::int64_t samples) const {
  if (!sequential_) return {alpha_};
  const int look = schedule_.look_at(samples);
  if (look < 0)
    throw rguard::Error(fmt::format("certifier retrievalguard: {} samples is no look of its schedule ({})", samples,
                                    fmt::join(schedule_.sizes, ", ")));
  return {schedule_.alphas[static_cast<std::size_t>(look)]};
}

rguard::Statistics RetrievalGuard::statistics(const rguard::QueryInfo& query, const rguard::GalleryView& gallery,
                              const double* selection) const {
  rguard::Statistics parts{rguard::sum_statistic(gallery.dim)};
  if (directional()) parts.push_back(rguard::second_moment_statistic(gallery.dim));
  if (level_sets()) {
    const double* unit = unit_gallery(gallery);
    const double* samples = selection + 1;  // after the samples statistic's count
    const rg::Selection chosen = rg::select_from_samples(unit, gallery.label, gallery.size, gallery.dim, query.label,
                                                         query.gallery_index, samples, plan_.selection, shortlist());
    if (margin_)
      parts.push_back(std::make_shared<rg::MarginLevelCounts>(
          rg::plan_margin(chosen, gallery.embedding, gallery.size, gallery.dim, gallery.label, query.label,
                          query.gallery_index, samples, plan_.selection, ranks_, levels_, pool_),
          gallery.embedding, gallery.size, gallery.dim, ranks_, levels_, pool_, every_));
    else
      parts.push_back(std::make_shared<rg::PairLevelCounts>(rg::plan_pairs(chosen, candidates_, levels_, grid_), unit,
                                                            gallery.dim, candidates_, levels_, grid_));
  }
  return parts;
}

std::vector<std::pair<std::string, std::string>> RetrievalGuard::describe() const {
  std::vector<std::pair<std::string, std::string>> out{
      {"bound", bound_},
      {"radius", choice_},
      {"alpha_mean_event", fmt::format("{}", mean_alpha(alpha_))},
  };
  if (level_sets()) {
    out.emplace_back("alpha_level_event", fmt::format("{}", alpha_ - mean_alpha(alpha_)));
    out.emplace_back("alpha_per_level", fmt::format("{}", per_level_alpha(alpha_)));
    out.emplace_back("level_statistic", margin_ ? "margin" : "pairs");
    out.emplace_back("levels", fmt::format("{}", levels_));
    if (margin_) {
      out.emplace_back("pool", fmt::format("{}", pool_));
      out.emplace_back("level_every", fmt::format("{}", every_));
    } else {
      out.emplace_back("candidates", fmt::format("{}", candidates_));
      out.emplace_back("level_placement", grid_ ? "grid" : "selection");
    }
  }
  out.emplace_back("ranks", fmt::format("{}", ranks_));
  if (sequential_) {  // each query's alpha is its look's (Theorem S), split as above
    out.emplace_back("sampling", "sequential");
    out.emplace_back("looks", fmt::format("{}", fmt::join(schedule_.sizes, ",")));
    out.emplace_back("alpha_looks", fmt::format("{}", fmt::join(schedule_.alphas, ",")));
    out.emplace_back("target_radii", fmt::format("{}", fmt::join(targets_, ",")));
  }
  return out;
}

bool RetrievalGuard::need_more(const rguard::QueryInfo& query, const rguard::GalleryView& gallery, const rguard::QueryState& state,
               double sigma) const {
  const int look = schedule_.look_at(state.samples);
  if (!sequential_ || look < 0 || look + 1 >= static_cast<int>(schedule_.sizes.size())) return false;
  const Look now = look_for(state.samples);
  Look optimistic{optimism_};
  optimistic.final_n = plan_.n;
  optimistic.final_alpha = schedule_.alphas.back();
  return rg::draws_on(certify_at(query, gallery, state, sigma, now), certify_at(query, gallery, state, sigma, optimistic),
                      targets_, target_ranks_);
}

}  // namespace rguard::retrievalguard

RGUARD_PLUGIN(rguard::PluginKind::Certifier, "retrievalguard", "2.0",
              "RetrievalGuard certified l2 radii A, B, C, level sets D, and certified Recall@K for smoothed retrieval",
              rguard::retrievalguard::RetrievalGuard, rguard::retrievalguard::schema())
