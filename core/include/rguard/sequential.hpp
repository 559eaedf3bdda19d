// Sequential certification (Theorem S, docs/certificates.md): a query's samples come in
// rounds, and after each round its certificate may be looked at and the query stopped. Each
// look r spends alpha_r of the certificate's alpha, sum_r alpha_r <= alpha: by the union
// bound every look's certificate holds at once with probability >= 1 - alpha, so whichever
// look a data-dependent rule stops at, its certificate holds. The bounds themselves are the
// fixed-n ones, computed at the look's sample count with the look's alpha.
#pragma once

#include <cstdint>
#include <vector>

namespace rguard {

struct SequentialSchedule {
  std::vector<std::int64_t> sizes;  // cumulative samples at each look: increasing, the last is n
  std::vector<double> alphas;       // what each look spends, summing to at most alpha (0: the look
                                    // can only abstain, which needs no confidence)
  // The look at `samples` samples (one of `sizes`); -1 when no look happens there.
  int look_at(std::int64_t samples) const;
};

// Looks at first, first g, first g^2, ... (each rounded up to a whole sample), the last at n
// exactly; a look within a factor sqrt(g) of n is merged into the look at n, so no round is
// a sliver. max_step > 0 caps the step: once g times a look would pass it by more than
// max_step, looks come every max_step samples, none within max_step / 2 of n (the step into
// n is then at most 1.5 max_step; at the switch, at most g^1.5 - 1 over g - 1 times it: 1.67
// for g = 1.5). A query that stops late draws about that much more than it needed at most,
// not up to a factor g. The look at n spends final_share of alpha
// (the queries that need every sample lose only ln(1/final_share) in ln(1/alpha)); the
// earlier looks share the rest in proportion to their samples (look r: its n_r over the sum
// of the early looks' n_r). Refuses (rguard::Error) first < 1, g <= 1, n < first, alpha
// outside (0, 1), final_share outside (0, 1] or max_step < 0. final_share = 1: the early
// looks spend nothing (they may only stop a query to abstain). first = n (a single look)
// spends all of alpha at n: fixed-n.
SequentialSchedule geometric_schedule(std::int64_t first, double growth, std::int64_t n, double alpha,
                                      double final_share = 0.3, std::int64_t max_step = 0);

}  // namespace rguard
