// Runs a resolved pipeline: dataset -> backbone (train or load) -> clean embeddings ->
// a oneTBB flow graph over query blocks (noise -> noisy embeddings -> sufficient
// statistics -> cache write -> certificates) -> metrics -> outputs. Every stage output is
// cached under a key hashing what is upstream of it (docs/architecture.md).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "pipeline/run_result.hpp"
#include "spec/spec.hpp"

namespace rguard {

class PluginLoader;

struct RunOptions {
  std::ostream* log = nullptr;  // stage lines and progress; nullptr = silent
  bool write_outputs = true;
  std::string force;  // "", "backbone", "embeddings" or "samples": recompute it and what follows
  // Shard `shard` of `shards` (> 1): sample only query blocks b with b % shards == shard
  // (blocks numbered over all points in run order) into the cache and stop there. The next
  // run without shards reuses them and writes the outputs (docs/cluster.md).
  int shard = 0, shards = 1;
};

// Runs every sweep point. Points that share a trained backbone share its stages.
RunResult run_experiment(const ExperimentSpec& spec, const PluginLoader& loader, const RunOptions& options);
RunResult run_pipeline(const PipelineSpec& spec, const PluginLoader& loader, const RunOptions& options);

// What `rguard show` prints per point and stage: its cache key and whether the cache holds it.
std::vector<StageReport> cache_status(const ExperimentSpec& spec, const PluginLoader& loader);

// The stages `--force` accepts, in pipeline order.
const std::vector<std::string>& forceable_stages();

}  // namespace rguard
