// Sequential sampling's stopping rule (Theorem S, docs/certificates.md). After a look, a
// query draws on only if more samples can still change what it certifies at the target
// radii: it stops once certified beyond the largest target at every K, and gives up once
// even an optimistic projection to n samples reaches no target above those it holds.
// Stopping never costs validity (Theorem S holds for any rule); only samples or radius.
#pragma once

#include <cstdint>
#include <vector>

#include "rguard/certificate.hpp"

namespace rguard::retrievalguard {

// `now`: the query's certificate at this look (spending the look's alpha). `optimistic`:
// what it could certify at n, with the true mean and level probabilities as favourable as
// this look's confidence allows and the deviations of n samples (an upper estimate, not a
// certificate). Radii count at a target t when above it (certified_recall's rule), for
// Recall@K with K = 1 .. rank_radius.size() (rank_radius[0], or `radius` without them).
// `targets`: ascending, non-empty. `ks`: the K that count (1-based; those past the radii
// kept are ignored); empty: every K kept.
bool draws_on(const Certificate& now, const Certificate& optimistic, const std::vector<double>& targets,
              const std::vector<std::int64_t>& ks = {});

}  // namespace rguard::retrievalguard
