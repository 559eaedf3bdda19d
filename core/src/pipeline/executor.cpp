// Runs a resolved pipeline, stage after stage (run_session.hpp says which file does what).
#include "pipeline/executor.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <tbb/task_arena.h>
#include <torch/types.h>

#include <algorithm>
#include <iostream>
#include <thread>

#include "rguard/audit.hpp"
#include "output/destination.hpp"
#include "output/run_folder.hpp"
#include "output/outputs.hpp"
#include "pipeline/run_session.hpp"

namespace rguard {

using namespace run;

namespace {

// ---- setup --------------------------------------------------------------------------

void create_plugins(Session& s) {
  const PipelineSpec& first = s.spec.points.front().spec;
  s.device = torch::Device(first.device);
  if (s.device.is_cuda() && !at::hasCUDA())
    throw Error(fmt::format("{}: device: '{}' but this LibTorch has no CUDA device; use device: cpu", first.file,
                            first.device));
  s.threads = first.threads > 0 ? static_cast<int>(first.threads)
                                : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(s.threads);
  for (const auto& sweep : s.spec.points) {
    auto p = std::make_unique<Point>();
    p->sweep = &sweep;
    p->spec = &sweep.spec;
    p->dataset = s.loader.create<Dataset>(sweep.spec.dataset);
    p->backbone = s.loader.create<Backbone>(sweep.spec.backbone);
    if (sweep.spec.denoiser) p->denoiser = s.loader.create<Denoiser>(*sweep.spec.denoiser);
    p->noise = s.loader.create<Noise>(sweep.spec.noise);
    p->certifier = s.loader.create<Certifier>(sweep.spec.certifier);
    for (const auto& metric : sweep.spec.metrics) p->metrics.push_back(s.loader.create<Metric>(metric));
    for (const auto& attack : sweep.spec.attacks) p->attacks.push_back(s.loader.create<Attack>(attack));
    const PipelineSpec& spec = sweep.spec;
    with_context([&] { return plugin_failure(spec, spec.certifier, "while checking the noise plugin"); },
                 [&] { p->certifier->check_noise(*p->noise); });
    s.points.push_back(std::move(p));
  }
}

// A run interrupted while swapping its outputs in may have left the last finished run moved
// aside: put it back before the work, so that the run folder is there while this one runs.
void restore_interrupted_swap(const ExperimentSpec& spec) {
  const std::string moved_aside = "." + spec.name + ".old-";
  bool found = false;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(spec.output_root, ec), end; !ec && it != end && !found; it.increment(ec))
    found = it->path().filename().string().rfind(moved_aside, 0) == 0;
  if (!found) return;
  CacheLock lock((std::filesystem::path(spec.output_root) / fmt::format(".{}.lock", spec.name)).string());
  run_folder::recover(spec.output_root, spec.name);
}

int force_index(const std::string& force) {
  if (force.empty()) return 99;
  const auto& order = forceable_stages();
  const auto it = std::find(order.begin(), order.end(), force);
  if (it == order.end())
    throw Error(fmt::format("--force '{}': expected one of {}{}", force, fmt::join(order, ", "), did_you_mean(force, order)));
  return static_cast<int>(it - order.begin());
}


}  // namespace

const std::vector<std::string>& forceable_stages() {
  static const std::vector<std::string> stages(std::begin(kForceableStages), std::end(kForceableStages));
  return stages;
}

RunResult run_experiment(const ExperimentSpec& spec, const PluginLoader& loader, const RunOptions& options) {
  const auto start = Clock::now();
  Session s(spec, loader, options.log);
  s.force = force_index(options.force);
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards)
    throw Error(fmt::format("--shard {}/{}: expected I/N with 0 <= I < N", options.shard, options.shards));
  s.shard = options.shard;
  s.shards = options.shards;
  check_destinations(spec, options.write_outputs && s.shards == 1);
  if (options.write_outputs && s.shards == 1) restore_interrupted_swap(spec);
  create_plugins(s);
  load_datasets(s);
  for (auto& p : s.points) p->queries = select_queries(s, *p);
  assign_models(s);
  // All LibTorch work runs on this thread. libgomp gives each thread that starts a
  // parallel region its own team of workers; once more workers exist than cores (a TBB
  // worker running a forward pass starts a second team), it makes them sleep after
  // every region instead of spinning, and each of the forward pass's dozen short
  // regions then pays a wake-up: measured about 20% slower sampling (docs/performance.md).
  tbb::task_arena one_thread(1);
  one_thread.execute([&] { prepare_models(s); });
  certify_all(s);

  RunResult result;
  for (const auto& p : s.points) result.blocks_total += static_cast<std::int64_t>(p->blocks.size());
  result.computed_blocks = s.computed_blocks;
  result.blocks_in_shard = s.blocks_in_shard;
  if (s.shards > 1) {
    result.stages = s.stages;
    result.seconds = seconds_since(start);
    return result;
  }
  for (auto& p : s.points) {
    result.points.push_back(collect_point(s, *p));
    const auto& point = result.points.back();
    if (point.attacks.empty()) continue;
    const SoundnessCounts c = count_soundness(point.attacks, point.alpha);
    const std::string line = fmt::format("soundness audit, point '{}': {} certified (query, attack, eps) checked: {} confirmed, "
                                         "{} inconclusive, {} violations (at most {} plausible at alpha)",
                                         point.name, c.audited, c.confirmed, c.inconclusive, c.violations, c.allowed);
    if (c.failed()) {
      result.soundness_failed = true;
      const std::string banner = fmt::format(
          "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
          "!!! SOUNDNESS FAILURE: attacks beat certificates more often than alpha allows.\n!!! {}\n"
          "!!! This is a bug in a bound, a plugin or the noise: please report it with this run folder.\n"
          "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
          line);
      std::cerr << banner;
      if (s.log && s.log != &std::cerr) *s.log << banner;
    } else if (s.log) {
      *s.log << line << "\n";
    }
  }
  for (const auto& p : s.points) {
    const Model& m = *p->model;
    const bool listed = std::any_of(result.galleries.begin(), result.galleries.end(),
                                    [&](const GalleryRecord& g) { return g.key == m.embedding_key; });
    if (!listed) result.galleries.push_back({m.embedding_key, m.dim, m.gallery_embedding, m.data->gallery_label});
  }
  result.stages = s.stages;
  // What this run used, for `rguard cache ls` and `gc` (cache/uses/<name>.json).
  for (const auto& [canonical, data] : s.datasets)
    if (!data->cache_key.empty()) result.cache_entries.push_back({kDatasetStage, data->cache_key});
  for (const auto& [slot, model] : s.models) {
    result.cache_entries.push_back({kBackboneStage, model->key});
    if (model->denoiser) result.cache_entries.push_back({kDenoiserStage, model->denoiser_key});
    result.cache_entries.push_back({kEmbeddingStage, model->embedding_key});
  }
  for (const auto& p : s.points) {
    for (const auto& b : p->blocks) result.cache_entries.push_back({kSampleStage, b.key});
    for (const auto& key : p->audit_keys) result.cache_entries.push_back({kAuditStage, key});
  }
  result.seconds = seconds_since(start);
  if (options.write_outputs) result.output_dir = write_run_outputs(spec, result);
  return result;
}

RunResult run_pipeline(const PipelineSpec& spec, const PluginLoader& loader, const RunOptions& options) {
  ExperimentSpec experiment;
  experiment.file = spec.file;
  experiment.name = spec.name;
  experiment.output_root = spec.output_root;
  experiment.cache_root = spec.cache_root;
  experiment.resolved_yaml = spec.resolved_yaml;
  experiment.points.push_back({spec.point, {}, spec});
  return run_experiment(experiment, loader, options);
}

std::vector<StageReport> cache_status(const ExperimentSpec& spec, const PluginLoader& loader) {
  Session s(spec, loader, nullptr);
  create_plugins(s);
  load_datasets(s);
  for (auto& p : s.points) p->queries = select_queries(s, *p);
  assign_models(s);
  std::vector<StageReport> out(s.stages.begin(), s.stages.end());
  for (auto& p : s.points) {
    Model& m = *p->model;
    const std::string& name = p->spec->point;
    auto entry = s.cache.open(kBackboneStage, m.key);
    out.push_back({name, "backbone", entry ? "cached" : "missing", 0, m.key, p->spec->backbone.plugin});
    if (!entry) {
      out.push_back({name, "embeddings", "missing", 0, "", "needs the backbone"});
      out.push_back({name, "samples", "missing", 0, "", "needs the backbone"});
      continue;
    }
    m.weights_hash = entry->attribute_string("/", "weights_hash");
    if (m.denoiser) {
      m.denoiser_key = denoiser_key(s, *p->spec, m, m.weights_hash);
      auto denoiser = s.cache.open(kDenoiserStage, m.denoiser_key);
      out.push_back({name, "denoiser", denoiser ? "cached" : "missing", 0, m.denoiser_key, p->spec->denoiser->plugin});
      if (!denoiser) {
        out.push_back({name, "embeddings", "missing", 0, "", "needs the denoiser"});
        out.push_back({name, "samples", "missing", 0, "", "needs the denoiser"});
        continue;
      }
      m.weights_hash = denoised_weights_hash(m.weights_hash, denoiser->attribute_string("/", "weights_hash"));
      m.forward = denoised_forward(m.forward, *p->spec->denoiser, m.denoiser->fingerprint());
    }
    m.backbone->init(p->data->shape(), 0);
    m.dim = m.backbone->embedding_dim();
    m.embedding_key = embedding_key(s, m);
    out.push_back({name, "embeddings", s.cache.open(kEmbeddingStage, m.embedding_key) ? "cached" : "missing", 0,
                   m.embedding_key, ""});
    plan_blocks(s, *p);
    std::int64_t cached = 0;
    for (auto& block : p->blocks) cached += load_block(s, block);
    const auto total = static_cast<std::int64_t>(p->blocks.size());
    out.push_back({name, "samples", cached == total ? "cached" : cached == 0 ? "missing" : "partial", 0, p->sample_key,
                   fmt::format("{} of {} query blocks cached", cached, total)});
  }
  return out;
}

}  // namespace rguard
