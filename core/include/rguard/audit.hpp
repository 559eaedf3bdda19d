// Tallies of the soundness audit (docs/attacks.md), shared by the `soundness` metric and
// the executor's loud check.
#pragma once

#include <cstdint>
#include <vector>

#include "rguard/metric.hpp"

namespace rguard {

struct SoundnessCounts {
  std::int64_t audited = 0;  // (certified query, attack, eps < radius) triples
  std::int64_t confirmed = 0, inconclusive = 0, violations = 0;
  // Violations still plausible when every certificate fails with probability alpha and
  // every re-estimate with its own alpha: the 1 - 1e-3 quantile of Binomial(audited, sum).
  std::int64_t allowed = 0;
  bool failed() const { return violations > allowed; }
};

SoundnessCounts count_soundness(const std::vector<AttackOutcome>& outcomes, double certificate_alpha);

}  // namespace rguard
