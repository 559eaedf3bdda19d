// What a run produced: per stage a report line, per sweep point its certificates, attack
// outcomes and metrics (what outputs.cpp writes and `rguard run` prints).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rguard/certificate.hpp"
#include "rguard/metric.hpp"

namespace rguard {

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
  std::string gallery;  // the key of its model's clean gallery embeddings (RunResult::galleries)
  double sigma = 0, alpha = 0;
  double rho = 0;  // median over queries (the variance-adaptive rho differs per query)
  std::int64_t n = 0;
  std::vector<Certificate> certificates;  // sorted by query id
  std::vector<std::int64_t> query_gallery_index;  // per certificate
  std::int64_t selection = 0;                     // selection samples per query
  std::vector<QueryColumn> columns;               // metrics' per-query values (rank bounds, ...)
  std::vector<std::pair<std::string, std::string>> certifier_notes;  // Certifier::describe()
  std::vector<double> seconds;                    // sampling time per query
  std::vector<AttackOutcome> attacks;             // per attack and eps
  std::vector<MetricValue> metrics;
  // Wall time its backbone trained (0 for a model used as loaded). A record of this machine,
  // like the stage times: kept in manifest.json, never in the byte-identical outputs.
  double train_seconds = 0;
  double denoiser_train_seconds = 0;  // the same for its denoiser, if any
};

// The clean gallery one model embedded: what its points' radii are computed against.
struct GalleryRecord {
  std::string key;  // the clean embeddings' cache key
  std::int64_t dim = 0;
  std::vector<float> embedding;  // [gallery x dim]
  std::vector<std::int64_t> label;
};

struct RunResult {
  std::string output_dir;
  std::vector<GalleryRecord> galleries;  // one per model, in the order of the points that use it
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

}  // namespace rguard
