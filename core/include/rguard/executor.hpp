// Runs a resolved pipeline: dataset -> backbone (train or load) -> clean embeddings ->
// a oneTBB flow graph over query blocks (noise -> noisy embeddings -> sufficient
// statistics -> cache write -> certificates) -> metrics -> outputs. Every stage output is
// cached under a key hashing what is upstream of it (docs/architecture.md).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "rguard/certifier.hpp"
#include "rguard/metric.hpp"
#include "rguard/spec.hpp"

namespace rguard {

class PluginLoader;

struct StageReport {
  std::string point;   // sweep point ("" for stages shared by every point)
  std::string stage;   // dataset, backbone, embeddings, samples, certificates, metrics
  std::string status;  // loaded, reused, computed, resumed (k/m blocks reused)
  double seconds = 0;
  std::string key;     // cache key ("" for stages that are not cached)
  std::string detail;
};

struct PointResult {
  std::string name;  // sweep point
  double sigma = 0, alpha = 0;
  double rho = 0;  // median over queries (the variance-adaptive rho differs per query)
  std::int64_t n = 0;
  std::vector<Certificate> certificates;  // sorted by query id
  std::vector<std::int64_t> query_gallery_index;  // per certificate
  std::vector<double> mean_embedding;             // F-hat, [certificates x dim]
  std::vector<double> sum_squares;                // the directional bound's packed sum f f^T, [certificates x dim (dim + 1) / 2]; else empty
  std::vector<double> seconds;                    // sampling time per query
  std::vector<AttackOutcome> attacks;             // per attack and eps
  std::vector<MetricValue> metrics;
};

struct RunResult {
  std::string output_dir;
  std::int64_t dim = 0;
  std::vector<float> gallery_embedding;  // [gallery x dim]
  std::vector<std::int64_t> gallery_label;
  std::vector<StageReport> stages;
  std::vector<PointResult> points;
  double seconds = 0;
  std::vector<std::pair<std::string, std::string>> cache_entries;  // (stage, key) this run used
  bool soundness_failed = false;  // the audit found more violations than alpha allows
  // A shard run (RunOptions::shards > 1) only fills the cache: no points, no outputs.
  std::int64_t blocks_total = 0;     // query blocks of all points
  std::vector<std::int64_t> computed_blocks;  // the blocks this run sampled (numbered over all points, as --shard does)
  std::int64_t blocks_in_shard = 0;  // a shard run: the blocks assigned to it
};

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
