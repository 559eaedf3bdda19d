// The state of one run, shared by the files of its stages, in data-flow order:
//   run_keys.cpp       cache keys of the stages
//   data_stage.cpp     datasets loaded (or read back), checked; the queries chosen
//   model_stage.cpp    backbones trained or restored; clean embeddings
//   denoiser_stage.cpp denoisers trained or restored in front of their frozen backbone
//   query_blocks.cpp   the queries of each point in blocks: plan, cache read and write
//   sampler.cpp        noisy samples through the backbone into sufficient statistics
//   certify_stage.cpp  the flow graph over all blocks: sample, store, certify
//   audit_run.cpp      attacks on the certified queries and the soundness audit
//   evaluate.cpp       a point's certificates, attacks and metrics collected
//   executor.cpp       the order of it all (run_experiment, cache_status)
// Internal to rguard_core.
#pragma once

#include <torch/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "rguard/attack.hpp"
#include "rguard/backbone.hpp"
#include "cache/cache.hpp"
#include "rguard/certifier.hpp"
#include "rguard/dataset.hpp"
#include "rguard/denoiser.hpp"
#include "rguard/error.hpp"
#include "pipeline/run_result.hpp"
#include "plugin/loader.hpp"
#include "rguard/metric.hpp"
#include "rguard/noise.hpp"
#include "spec/spec.hpp"
#include "rguard/statistics.hpp"

namespace rguard::run {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Cache stages, in pipeline order (the order --force uses).
inline constexpr const char* kDatasetStage = "dataset";
inline constexpr const char* kBackboneStage = "backbone";
inline constexpr const char* kEmbeddingStage = "embeddings";
inline constexpr const char* kSampleStage = "samples";
inline constexpr const char* kAuditStage = "audit";
inline constexpr const char* kCheckpointStage = "checkpoint";  // training in progress (same key as the backbone)
inline constexpr const char* kDenoiserStage = "denoiser";
inline constexpr const char* kDenoiserCheckpointStage = "denoiser-checkpoint";  // same key as the denoiser
inline constexpr std::string_view kForceableStages[] = {kBackboneStage, kDenoiserStage, kEmbeddingStage, kSampleStage};

// "spec.yaml:4:11: point 'main': backbone plugin 'small_cnn' failed while ...": whom a
// failure escaping a plugin is attributed to (with_context, rguard/error.hpp).
inline std::string plugin_failure(const PipelineSpec& spec, const StageSpec& stage, std::string_view doing) {
  return fmt::format("{}: point '{}': {} plugin '{}' failed {}", stage.location.str(), spec.point, to_string(stage.kind),
                     stage.plugin, doing);
}

// What a dataset plugin delivered, shared by every point with the same dataset spec.
struct LoadedData {
  RetrievalData data;
  std::string fingerprint;
  std::string cache_key;  // its entry in the cache's dataset stage; empty when it is not cached
  std::vector<std::int64_t> gallery_label, query_label, query_gallery_index;
  ImageShape shape() const {
    const auto& s = data.gallery.images.sizes();
    return {s[1], s[2], s[3]};
  }
};

// A trained (or loaded) backbone and its clean embeddings, shared by every point with
// the same backbone key (a backbone certified at several sigmas). With a denoiser, `base` is
// the frozen backbone, `backbone` the composition base o denoiser that everything after the
// model stage uses, and weights_hash and forward cover both.
struct Model {
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<Backbone> base;
  std::shared_ptr<Denoiser> denoiser;  // none: backbone == base
  std::string denoiser_key;
  double denoiser_train_seconds = 0;
  const Noise* noise = nullptr;        // training noise: the first point's plugin (its family is in the key)
  const PipelineSpec* spec = nullptr;  // the first point that asked for it
  LoadedData* data = nullptr;
  std::string key, weights_hash, embedding_key;
  std::string forward;  // forward_identity(): with weights_hash, what the forward pass computes
  std::int64_t dim = 0;
  double train_seconds = 0;  // how long training took (kept with the weights, resumes included)
  std::vector<float> gallery_embedding, query_embedding;
  std::vector<double> gallery_unit;  // unit_rows(gallery_embedding), for the certifiers
  GalleryView gallery() const {
    return {gallery_embedding.data(), data->gallery_label.data(), static_cast<std::int64_t>(data->gallery_label.size()), dim,
            gallery_unit.empty() ? nullptr : gallery_unit.data()};
  }
};

struct Point;

// One unit of streaming, caching and resume: a few queries of one point.
struct Block {
  Point* point = nullptr;
  std::vector<std::int64_t> rows;  // rows of the dataset's query set
  std::string key;
  bool cached = false;
  CacheLock lock;                  // held while this process computes the block
  std::vector<double> selection;   // [rows x selection size]: the certifier's selection statistics
  std::vector<double> state;       // [rows x state size]: its main statistics
  std::vector<std::int64_t> samples;  // main samples each query uses (n, or its stopping look)
  double seconds = 0;                 // the time those took to draw (sequential: by share)
  // Sequential sampling: what the cache entry holds, the states of each query at every look
  // it reached ([rows x looks x state size], zero past its reach), how far it reached and
  // how long all that took to draw. It serves any stopping rule on the same looks.
  std::vector<double> look_states;
  std::vector<std::int64_t> reached;
  double stored_seconds = 0;
  std::int64_t drawn_now = 0;  // main samples this run drew for it (the rest came from the cache)
  double decision_seconds = 0; // sequential: this run's stopping-rule decisions, replays on cached looks included
  bool extended = false;       // sequential: this run drew on from a cached prefix
  std::vector<Certificate> certificates;
};

struct Point {
  const SweepPoint* sweep = nullptr;
  const PipelineSpec* spec = nullptr;
  std::shared_ptr<Dataset> dataset;
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<Denoiser> denoiser;  // the spec's denoiser section, if any
  std::shared_ptr<Noise> noise;
  std::shared_ptr<Certifier> certifier;
  std::vector<std::shared_ptr<Metric>> metrics;
  std::vector<std::shared_ptr<Attack>> attacks;
  std::vector<std::string> audit_keys;  // its attacks' cache entries
  LoadedData* data = nullptr;
  Model* model = nullptr;
  std::string sample_key;
  std::string statistics_id;  // what the certifier keeps of the samples (in sample_key)
  std::vector<std::int64_t> queries;  // rows of the dataset's query set to certify, in block order
  std::vector<Block> blocks;
  std::int64_t reused_blocks = 0;
  std::int64_t shard_blocks = 0;  // blocks this run samples or reuses (all, unless sharded)
};

// Everything one run (or `rguard show`) knows.
struct Session {
  const ExperimentSpec& spec;
  const PluginLoader& loader;
  std::ostream* log;
  Cache cache;
  torch::Device device{torch::kCPU};
  int threads = 1;
  int force = 99;  // stages at or after this index are recomputed
  int shard = 0, shards = 1;
  std::int64_t blocks_in_shard = 0;
  std::vector<std::int64_t> computed_blocks;
  std::map<std::string, std::unique_ptr<LoadedData>> datasets;
  std::map<std::string, std::unique_ptr<Model>> models;
  std::vector<std::unique_ptr<Point>> points;
  std::vector<StageReport> stages;
  std::mutex report_lock;
  std::mutex torch_lock;  // one LibTorch-heavy task at a time: torch owns the cores

  Session(const ExperimentSpec& s, const PluginLoader& l, std::ostream* out)
      : spec(s), loader(l), log(out), cache(s.cache_root) {}

  bool forced(std::string_view stage) const {
    const auto* end = std::end(kForceableStages);
    return std::find(std::begin(kForceableStages), end, stage) - std::begin(kForceableStages) >= force;
  }

  void report(StageReport r) {
    std::lock_guard lock(report_lock);
    if (log) {
      const bool many = spec.points.size() > 1;
      *log << fmt::format("[{:<12}] {:<9} {:>7}  {}{}{}\n", r.stage, r.status, fmt::format("{:.1f} s", r.seconds),
                          many && !r.point.empty() ? r.point + ": " : "", r.detail,
                          r.key.empty() ? "" : fmt::format("  (key {})", r.key.substr(0, 12)))
           << std::flush;
    }
    stages.push_back(std::move(r));
  }
};

// ---- the stages (each in the file named above) ----------------------------------------

// run_keys.cpp
std::string backbone_key(const Session& s, const PipelineSpec& spec, const Backbone& backbone, const LoadedData& data);
std::string forward_identity(const StageSpec& backbone, const std::string& fingerprint);
// The denoiser's cache key: its spec and file, the frozen base's key and weights hash.
std::string denoiser_key(const Session& s, const PipelineSpec& spec, const Model& model, const std::string& base_hash);
// What base o denoiser computes: forward_identity of each part; its weights: both hashes.
std::string denoised_forward(const std::string& base_forward, const StageSpec& denoiser, const std::string& fingerprint);
std::string denoised_weights_hash(const std::string& base_hash, const std::string& denoiser_hash);
std::string embedding_key(const Session& s, const Model& model);
std::string sample_key(const Session& s, const Point& p);

// data_stage.cpp
void load_datasets(Session& s);
// The rows of the point's query set that can be certified, in a seeded order (throws when
// there are none: before any training).
std::vector<std::int64_t> select_queries(Session& s, const Point& p);

// model_stage.cpp
void assign_models(Session& s);
void prepare_models(Session& s);

// denoiser_stage.cpp: trains or restores m.denoiser in front of the prepared m.base (frozen),
// then makes m.backbone the composition and sets weights_hash and forward to cover both.
void prepare_denoiser(Session& s, Model& m);

// query_blocks.cpp
void plan_blocks(const Session& s, Point& p);
bool load_block(const Session& s, Block& block);  // true when the cache held it
void sample_block(Session& s, Block& block, std::atomic<std::int64_t>& samples_done);
void store_block(const Session& s, const Block& block);

// sequential_blocks.cpp: a sequential block's looks. At each, the queries still drawing take
// their state from block.look_states where it reaches that far, and otherwise draw on from
// the previous look through `draw_on` (queries, from, to, their states); after each look but
// the last, the certifier's need_more() says which go on. Sets samples, state and seconds.
// Without draw_on (replaying a cached entry) returns false, changing nothing, as soon as a
// query would need samples the entry lacks.
using DrawOn = std::function<void(const std::vector<std::size_t>& queries, std::int64_t from, std::int64_t to,
                                  double* states)>;
bool follow_looks(const Point& p, Block& block, const DrawOn* draw_on);
// block.seconds: the share of stored_seconds that the samples it uses took to draw.
void share_seconds(const SamplingPlan& plan, Block& block);

// sampler.cpp: streams noisy copies [from, to) of each image through the point's backbone,
// in forward batches, and feeds image i's unit embeddings (double), in sample order, to
// parts[i] (states: [images x state_size(parts[0])]; initialised here when from = 0,
// otherwise holding copies [0, from) already, which the stream continues). Image i's noise
// is keyed by noise_ids[i] and the sample index, so a continued stream is the same prefix.
// one_image_per_pass: every forward pass holds one image's samples [from + j B, from + (j+1) B)
// alone, so a sample's embedding cannot depend on which other images draw beside it:
// kernels may round a row by its place in the pass and by the pass's shape (sequential
// sampling, where which queries still draw depends on the stopping rule, but the looks,
// and so every pass's rows and shape, do not).
void stream_samples(const Session& s, const Point& p, const std::vector<const float*>& images,
                    const std::vector<std::int64_t>& noise_ids, std::int64_t from, std::int64_t to,
                    std::uint64_t noise_seed, const std::vector<Statistics>& parts, double* states,
                    std::atomic<std::int64_t>* samples_done, bool one_image_per_pass = false);

// certify_stage.cpp: samples (or reads back) every block of every point and certifies it.
void certify_all(Session& s);

// audit_run.cpp: attacks the point's certified queries and audits their certificates.
std::vector<AttackOutcome> audit_point(Session& s, Point& p, const PointResult& point);

// evaluate.cpp
PointResult collect_point(Session& s, Point& p);

}  // namespace rguard::run
