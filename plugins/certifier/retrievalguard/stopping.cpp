#include "stopping.hpp"

#include <algorithm>

namespace rguard::retrievalguard {

namespace {
// Recall@K radii, K = 1 ..: the certificate's Recall@1 radius first (0 when abstaining).
std::vector<double> recall_radii(const Certificate& c) {
  if (c.rank_radius.empty()) return {c.abstain ? 0.0 : c.radius};
  return c.rank_radius;
}
}  // namespace

bool draws_on(const Certificate& now, const Certificate& optimistic, const std::vector<double>& targets,
              const std::vector<std::int64_t>& ks) {
  const auto held = recall_radii(now), reachable = recall_radii(optimistic);
  for (std::size_t k = 0; k < held.size(); ++k) {
    if (!ks.empty() && std::find(ks.begin(), ks.end(), static_cast<std::int64_t>(k + 1)) == ks.end()) continue;
    // The smallest target this K does not hold yet; none left: nothing to gain at this K.
    const auto next = std::find_if(targets.begin(), targets.end(), [&](double t) { return !(held[k] > t); });
    if (next == targets.end()) continue;
    if (k < reachable.size() && reachable[k] > *next) return true;  // n samples might reach it
  }
  return false;
}

}  // namespace rguard::retrievalguard
