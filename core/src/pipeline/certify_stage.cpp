// The certification stage: every point's query blocks streamed through one flow graph
// (sampler on the calling thread, one serial HDF5 writer, parallel certification).
#include <fmt/format.h>
#include <tbb/flow_graph.h>

#include <atomic>
#include <exception>
#include <iostream>
#include <mutex>
#include <semaphore>

#include "pipeline/progress.hpp"
#include "pipeline/run_session.hpp"

namespace rguard::run {

namespace {

void certify_block(Block& block) {
  const Point& p = *block.point;
  const auto& d = *p.data;
  const GalleryView gallery = p.model->gallery();
  const SamplingPlan plan = p.certifier->plan();
  const std::size_t count = block.rows.size();
  const std::size_t selection = block.selection.size() / count, size = block.state.size() / count;
  block.certificates.clear();
  for (std::size_t i = 0; i < count; ++i) {
    const auto id = static_cast<std::size_t>(block.rows[i]);
    const QueryInfo query{block.rows[i], d.query_label[id], d.query_gallery_index[id]};
    const QueryState state{plan.selection, block.samples[i], block.selection.empty() ? nullptr : block.selection.data() + i * selection,
                           block.state.data() + i * size};
    block.certificates.push_back(p.certifier->certify(query, gallery, state, p.noise->sigma()));
  }
}

}  // namespace

void certify_all(Session& s) {
  const auto start = Clock::now();
  std::vector<Block*> order;
  std::int64_t to_compute = 0;
  // A shard samples the blocks b (numbered over all points, in run order) with
  // b % shards == shard; the others are neither loaded nor sampled.
  auto in_shard = [&](std::size_t b) { return s.shards == 1 || static_cast<int>(b % static_cast<std::size_t>(s.shards)) == s.shard; };
  for (auto& p : s.points) {
    plan_blocks(s, *p);
    p->reused_blocks = 0;
    p->shard_blocks = 0;
    for (auto& block : p->blocks) {
      if (in_shard(order.size())) {
        ++p->shard_blocks;
        if (!s.forced(kSampleStage) && load_block(s, block)) ++p->reused_blocks;
        else to_compute += static_cast<std::int64_t>(block.rows.size()) * (p->certifier->plan().n + p->certifier->plan().selection);
      }
      order.push_back(&block);
    }
  }

  Progress progress(s.log ? *s.log : std::cerr, "certify", "samples", to_compute, s.log != nullptr && to_compute > 0);
  std::atomic<std::int64_t> samples_done{0};
  std::exception_ptr error;
  std::mutex error_lock;
  std::atomic<bool> failed{false};
  auto guarded = [&](auto&& body) {
    return [&, body](Block* block) -> Block* {
      if (failed) return block;
      try {
        body(*block);
      } catch (...) {
        std::lock_guard lock(error_lock);
        if (!error) error = std::current_exception();
        failed = true;
      }
      return block;
    };
  };

  namespace flow = tbb::flow;
  flow::graph graph;
  std::counting_semaphore<> in_flight(2);  // bounded memory: two blocks past the sampler
  flow::function_node<Block*, Block*> writer(graph, flow::serial, guarded([&](Block& b) {
    if (!b.cached) {
      store_block(s, b);  // the only node that writes HDF5
      b.lock = CacheLock();
    }
    progress.update(samples_done.load());
  }));
  flow::function_node<Block*, Block*> certify(graph, flow::unlimited, guarded([&](Block& b) {
    const Point& p = *b.point;
    with_context([&] { return plugin_failure(*p.spec, p.spec->certifier, "while certifying"); }, [&] { certify_block(b); });
  }));
  flow::function_node<Block*, flow::continue_msg> done(graph, flow::serial, [&](Block*) {
    in_flight.release();
    return flow::continue_msg();
  });
  flow::make_edge(writer, certify);
  flow::make_edge(certify, done);
  auto sample = guarded([&](Block& b) {
    if (b.cached) return;
    b.lock = s.cache.lock(kSampleStage, b.key);  // a concurrent run may be computing it
    if (!s.forced(kSampleStage) && load_block(s, b)) {
      ++b.point->reused_blocks;
      b.lock = CacheLock();
      return;
    }
    std::lock_guard torch(s.torch_lock);
    const Point& p = *b.point;
    with_context(
        [&] {
          return plugin_failure(*p.spec, p.spec->backbone,
                                fmt::format("while sampling (noise plugin '{}')", p.spec->noise.plugin));
        },
        [&] { sample_block(s, b, samples_done); });
  });
  // The sampler is this thread (see run_experiment): blocks go on to the graph's workers
  // for writing and certification while the next block is sampled.
  for (std::size_t b = 0; b < order.size(); ++b) {
    Block* block = order[b];
    if (!in_shard(b)) continue;
    ++s.blocks_in_shard;
    // Where TBB has no worker thread (one CPU, or a process bound to one core, as mpirun
    // does), this thread runs the writer and certification itself while it waits.
    if (!in_flight.try_acquire()) {
      graph.wait_for_all();
      in_flight.acquire();
    }
    if (failed) break;
    const bool was_cached = block->cached;
    writer.try_put(sample(block));
    if (!was_cached && !block->cached) s.computed_blocks.push_back(static_cast<std::int64_t>(b));
  }
  graph.wait_for_all();
  progress.finish();
  if (error) std::rethrow_exception(error);

  const double elapsed = seconds_since(start);
  for (auto& p : s.points) {
    const auto total = static_cast<std::int64_t>(p->blocks.size());
    std::int64_t queries = 0, drawn = 0, drawn_now = 0;
    bool extended = false;
    double sampling = 0;  // this point's own share of the sampling time
    double deciding = 0;  // sequential: the stopping rule's decisions, on reused blocks too
    for (const auto& b : p->blocks) {
      queries += static_cast<std::int64_t>(b.rows.size());
      for (const auto m : b.samples) drawn += m;
      if (!b.cached) sampling += b.seconds;
      if (!b.cached) drawn_now += b.drawn_now;
      deciding += b.decision_seconds;
      extended = extended || b.extended;
    }
    const SamplingPlan plan = p->certifier->plan();
    // Sequential: the forward passes the point's queries drew, against n for every query.
    const std::string sequential =
        plan.looks.empty() || queries == 0
            ? ""
            : fmt::format(" at most; sequential: {} main samples in all, {:.1f}x fewer than fixed n, {} drawn by this run, "
                          "stopping rule {:.2f} s",
                          human_count(double(drawn)),
                          static_cast<double>(queries * plan.n) / static_cast<double>(std::max<std::int64_t>(drawn, 1)),
                          human_count(double(drawn_now)), deciding);
    const std::int64_t mine = p->shard_blocks;
    const std::string status = p->reused_blocks == mine ? "reused" : p->reused_blocks == 0 && !extended ? "computed" : "resumed";
    const std::string shard =
        s.shards > 1 ? fmt::format(", shard {}/{}: {} of the {} blocks", s.shard, s.shards, mine, total) : "";
    s.report({p->spec->point, "samples", status, sampling, p->sample_key,
              fmt::format("{} queries x {} samples{}{}, {} of {} blocks reused{}", queries, plan.n,
                          plan.selection > 0 ? fmt::format(" (+{} selection)", plan.selection) : "", sequential,
                          p->reused_blocks, mine, shard)});
  }
  // What was drawn, not what was planned: a sequential query may stop before n.
  const auto drawn = static_cast<double>(samples_done.load());
  if (to_compute > 0 && s.log)
    *s.log << fmt::format("[{:<12}] {} noisy samples in {:.1f} s, {} samples/s\n", "samples", human_count(drawn), elapsed,
                          human_count(drawn / elapsed));
}

}  // namespace rguard::run
