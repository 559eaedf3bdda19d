#include "rguard/audit.hpp"

#include "rguard/concentration.hpp"

namespace rguard {

SoundnessCounts count_soundness(const std::vector<AttackOutcome>& outcomes, double certificate_alpha) {
  SoundnessCounts c;
  double audit_alpha = 0;
  for (const auto& o : outcomes) {
    audit_alpha = std::max(audit_alpha, o.alpha);
    for (auto status : o.status) {
      switch (static_cast<AuditStatus>(status)) {
        case AuditStatus::Confirmed: ++c.confirmed; break;
        case AuditStatus::Inconclusive: ++c.inconclusive; break;
        case AuditStatus::Violation: ++c.violations; break;
        default: continue;
      }
      ++c.audited;
    }
  }
  c.allowed = binomial_upper_quantile(c.audited, std::min(1.0, certificate_alpha + audit_alpha), 1e-3);
  return c;
}

}  // namespace rguard
