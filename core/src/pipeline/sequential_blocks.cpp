// A sequential block's looks (Theorem S, docs/certificates.md): the cache keeps every
// query's states at each look it reached, so the stopping rule is replayed, never stored.
// A run with other target radii or alpha reuses the cached prefix of each stream, and a
// query that needs more continues its stream from the last cached look: the same states,
// to the bit, as drawing from scratch (the noise is keyed by sample index, and the looks
// alone set every forward pass's rows). The decisions at a look are the certifier's, one
// per query and independent (need_more() is a function of the query's state), so they run
// in parallel on ATen's threads, which the forward passes left idle.
#include <ATen/Parallel.h>

#include <numeric>

#include "pipeline/run_session.hpp"

namespace rguard::run {

bool follow_looks(const Point& p, Block& block, const DrawOn* draw_on) {
  const SamplingPlan plan = p.certifier->plan();
  const GalleryView gallery = p.model->gallery();
  const std::size_t count = block.rows.size(), looks = plan.looks.size();
  const std::size_t size = block.look_states.size() / (count * looks);
  const std::size_t selection_size = block.selection.size() / count;
  auto state_at = [&](std::size_t i, std::size_t look) { return block.look_states.data() + (i * looks + look) * size; };
  std::vector<std::size_t> active(count), stop(count, 0);
  std::iota(active.begin(), active.end(), std::size_t{0});
  for (std::size_t look = 0; look < looks && !active.empty(); ++look) {
    const std::int64_t from = look == 0 ? 0 : plan.looks[look - 1], to = plan.looks[look];
    std::vector<std::size_t> behind;  // drawing on, but not cached this far
    for (const auto i : active)
      if (block.reached[i] < to) behind.push_back(i);
    if (!behind.empty()) {
      if (!draw_on) return false;
      // Each was cached or drawn to exactly `from` (it was active at the last look).
      std::vector<double> states(behind.size() * size, 0.0);
      if (look > 0)
        for (std::size_t b = 0; b < behind.size(); ++b) std::copy_n(state_at(behind[b], look - 1), size, states.data() + b * size);
      (*draw_on)(behind, from, to, states.data());
      block.drawn_now += (to - from) * static_cast<std::int64_t>(behind.size());
      for (std::size_t b = 0; b < behind.size(); ++b) {
        std::copy_n(states.data() + b * size, size, state_at(behind[b], look));
        block.reached[behind[b]] = to;
      }
    }
    for (const auto i : active) stop[i] = look;
    if (look + 1 == looks) break;
    std::vector<char> more(active.size(), 0);
    const auto deciding = Clock::now();
    at::parallel_for(0, static_cast<std::int64_t>(active.size()), 1, [&](std::int64_t begin, std::int64_t end) {
      for (auto a = static_cast<std::size_t>(begin); a < static_cast<std::size_t>(end); ++a) {
        const std::size_t i = active[a];
        const auto id = static_cast<std::size_t>(block.rows[i]);
        const QueryInfo query{block.rows[i], p.data->query_label[id], p.data->query_gallery_index[id]};
        const QueryState state{plan.selection, to,
                               block.selection.empty() ? nullptr : block.selection.data() + i * selection_size, state_at(i, look)};
        more[a] = with_context([&] { return plugin_failure(*p.spec, p.spec->certifier, "deciding whether a query draws on"); },
                               [&] { return p.certifier->need_more(query, gallery, state, p.noise->sigma()); });
      }
    });
    block.decision_seconds += seconds_since(deciding);
    std::vector<std::size_t> going_on;
    for (std::size_t a = 0; a < active.size(); ++a)
      if (more[a]) going_on.push_back(active[a]);
    active = std::move(going_on);
  }
  block.samples.assign(count, 0);
  block.state.assign(count * size, 0.0);
  for (std::size_t i = 0; i < count; ++i) {
    block.samples[i] = plan.looks[stop[i]];
    std::copy_n(state_at(i, stop[i]), size, block.state.data() + i * size);
  }
  share_seconds(plan, block);
  return true;
}

void share_seconds(const SamplingPlan& plan, Block& block) {
  double used = 0, stored = 0;
  for (std::size_t i = 0; i < block.rows.size(); ++i) {
    used += static_cast<double>(plan.selection + block.samples[i]);
    stored += static_cast<double>(plan.selection + block.reached[i]);
  }
  block.seconds = stored > 0 ? block.stored_seconds * used / stored : 0.0;
}

}  // namespace rguard::run
