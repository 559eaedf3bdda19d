#include "rguard/executor.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <tbb/flow_graph.h>
#include <tbb/parallel_for.h>
#include <torch/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "rguard/backbone.hpp"
#include "rguard/cache.hpp"
#include "rguard/dataset.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/loader.hpp"
#include "rguard/noise.hpp"
#include "rguard/outputs.hpp"
#include "rguard/progress.hpp"
#include "rguard/tensors.hpp"

namespace rguard {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Cache key versions: bump one when the meaning of what that stage stores changes.
constexpr const char* kBackboneStage = "backbone";
constexpr const char* kEmbeddingStage = "embeddings";
constexpr const char* kSampleStage = "samples";

// One unit of streaming, caching and resume: a few queries and their statistics.
struct Block {
  std::vector<std::int64_t> rows;  // rows of the dataset's query set
  std::string key;
  bool cached = false;
  std::vector<double> sums;  // [rows x dim], sum over samples of f(x + delta) / ||f||
  double seconds = 0;
  std::vector<Certificate> certificates;
};

// Everything a run (or `rguard show`) knows about the pipeline so far.
struct Run {
  const PipelineSpec& spec;
  const PluginLoader& loader;
  std::ostream* log;
  Cache cache;
  torch::Device device{torch::kCPU};
  int threads = 1;

  std::shared_ptr<Dataset> dataset;
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<Noise> noise;
  std::shared_ptr<Certifier> certifier;
  std::vector<std::shared_ptr<Metric>> metrics;

  RetrievalData data;
  std::string data_fingerprint;
  std::string weights_hash;
  std::int64_t dim = 0;
  std::vector<float> gallery_embedding, query_embedding;
  std::vector<std::int64_t> gallery_label, query_label, query_gallery_index;
  std::vector<StageReport> stages;

  Run(const PipelineSpec& s, const PluginLoader& l, std::ostream* out)
      : spec(s), loader(l), log(out), cache(s.cache_root) {}

  void report(StageReport r) {
    if (log)
      *log << fmt::format("[{:<12}] {:<9} {:>7}  {}{}\n", r.stage, r.status, fmt::format("{:.1f} s", r.seconds),
                          r.detail, r.key.empty() ? "" : fmt::format("  (key {})", r.key.substr(0, 12)));
    stages.push_back(std::move(r));
  }

  std::string backbone_key() const {
    return Hasher()
        .text("backbone/1")
        .text(data_fingerprint)
        .text(spec.backbone.canonical())
        .u64(spec.seed)
        .text(device.str())
        .hex();
  }
  std::string embedding_key() const {
    return Hasher().text("embeddings/1").text(weights_hash).text(data_fingerprint).text(device.str()).hex();
  }
  std::string sample_key() const {
    return Hasher()
        .text("samples/1")
        .text(weights_hash)
        .text(data_fingerprint)
        .text(spec.noise.canonical())
        .u64(static_cast<std::uint64_t>(certifier->plan().n))
        .u64(spec.seed)
        .text(device.str())
        .hex();
  }
};

std::vector<std::int64_t> to_int64_vector(const at::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

void create_plugins(Run& run) {
  const auto& spec = run.spec;
  run.dataset = run.loader.create<Dataset>(spec.dataset);
  run.backbone = run.loader.create<Backbone>(spec.backbone);
  run.noise = run.loader.create<Noise>(spec.noise);
  run.certifier = run.loader.create<Certifier>(spec.certifier);
  for (const auto& metric : spec.metrics) run.metrics.push_back(run.loader.create<Metric>(metric));
  run.certifier->check_noise(*run.noise);
  run.device = torch::Device(spec.device);
  if (run.device.is_cuda() && !at::hasCUDA())
    throw Error(fmt::format("{}: device: '{}' but this LibTorch has no CUDA device; use device: cpu", spec.file,
                            spec.device));
  run.threads = spec.threads > 0 ? static_cast<int>(spec.threads)
                                 : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(run.threads);
}

void load_dataset(Run& run) {
  const auto start = Clock::now();
  run.data = run.dataset->load();
  validate_retrieval_data(run.data, run.spec.dataset.plugin);
  for (ImageSet* set : {&run.data.train, &run.data.query, &run.data.gallery})
    if (set->images.defined()) set->images = set->images.contiguous();
  run.data_fingerprint = fingerprint(run.data);
  run.gallery_label = to_int64_vector(run.data.gallery.labels);
  run.query_label = to_int64_vector(run.data.query.labels);
  run.query_gallery_index = to_int64_vector(run.data.query_gallery_index);
  run.report({"dataset", "loaded", seconds_since(start), "",
              fmt::format("{}: {} (fingerprint {})", run.spec.dataset.plugin, run.data.description,
                          run.data_fingerprint.substr(0, 12))});
}

std::string hash_state(Backbone& backbone) {
  Hasher h;
  for (const auto& [name, tensor] : backbone.state()) {
    h.text(name);
    hash_tensor(h, tensor);
  }
  return h.hex();
}

void store_state(H5File& file, Backbone& backbone) {
  std::int64_t i = 0;
  for (const auto& [name, tensor] : backbone.state()) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const std::string path = fmt::format("/state/{:04d}", i++);
    std::vector<std::uint64_t> shape(t.sizes().begin(), t.sizes().end());
    if (shape.empty()) shape.push_back(1);
    if (t.scalar_type() == torch::kFloat) file.write(path, t.data_ptr<float>(), shape);
    else if (t.scalar_type() == torch::kDouble) file.write(path, t.data_ptr<double>(), shape);
    else if (t.scalar_type() == torch::kLong) file.write(path, t.data_ptr<std::int64_t>(), shape);
    else throw Error(fmt::format("backbone state '{}' has unsupported dtype {}", name, c10::toString(t.scalar_type())));
    file.set_attribute(path, "name", name);
  }
}

template <class T>
at::Tensor tensor_from(std::vector<T> values, const std::vector<std::uint64_t>& shape, torch::ScalarType type) {
  std::vector<std::int64_t> sizes(shape.begin(), shape.end());
  return torch::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}, type).clone().view(sizes);
}

void restore_state(const H5File& file, Backbone& backbone) {
  torch::NoGradGuard no_grad;
  std::int64_t i = 0;
  for (auto& [name, live] : backbone.state()) {
    const std::string path = fmt::format("/state/{:04d}", i++);
    if (file.attribute_string(path, "name") != name)
      throw Error(fmt::format("{}: {}: stored tensor is not '{}'", file.path(), path, name));
    std::vector<std::uint64_t> shape;
    at::Tensor stored;
    if (live.scalar_type() == torch::kFloat) stored = tensor_from(file.read<float>(path, &shape), shape, torch::kFloat);
    else if (live.scalar_type() == torch::kDouble) stored = tensor_from(file.read<double>(path, &shape), shape, torch::kDouble);
    else stored = tensor_from(file.read<std::int64_t>(path, &shape), shape, torch::kLong);
    if (stored.numel() != live.numel())
      throw Error(fmt::format("{}: {}: stored tensor '{}' has {} values, the model {}", file.path(), path, name,
                              stored.numel(), live.numel()));
    live.copy_(stored.view(live.sizes()));
  }
}

ImageShape input_shape(const RetrievalData& data) {
  const auto& s = data.gallery.images.sizes();
  return {s[1], s[2], s[3]};
}

void prepare_backbone(Run& run) {
  const auto start = Clock::now();
  auto& backbone = *run.backbone;
  backbone.init(input_shape(run.data), derive_seed(run.spec.seed, "backbone/init"));
  backbone.to(run.device);
  run.dim = backbone.embedding_dim();
  const std::string key = run.backbone_key();
  if (auto entry = run.cache.open(kBackboneStage, key)) {
    try {
      restore_state(*entry, backbone);
      run.weights_hash = hash_state(backbone);
      if (entry->attribute_string("/", "weights_hash") != run.weights_hash)
        throw Error(fmt::format("{}: weights do not match their recorded hash", entry->path()));
      backbone.set_training(false);
      run.report({"backbone", "reused", seconds_since(start), key, run.spec.backbone.plugin});
      return;
    } catch (const Error& e) {
      if (run.log) *run.log << "warning: " << e.what() << "; retraining\n";
      backbone.init(input_shape(run.data), derive_seed(run.spec.seed, "backbone/init"));
      backbone.to(run.device);
    }
  }
  const TrainConfig& config = backbone.train_config();
  if (config.epochs > 0 && run.data.train.size() == 0)
    throw Error(fmt::format("{}: backbone.train.epochs is {} but the dataset has no train split; set it to 0",
                            run.spec.file, config.epochs));
  Progress progress(run.log ? *run.log : std::cerr, "train", "images", 1, run.log != nullptr);
  train_backbone(backbone, run.data.train, config, derive_seed(run.spec.seed, "backbone/train"),
                 [&](std::int64_t done, std::int64_t total, double loss) {
                   progress.set_total(total);
                   progress.update(done, fmt::format("loss {:.4f}", loss));
                 });
  progress.finish();
  backbone.set_training(false);
  run.weights_hash = hash_state(backbone);
  run.cache.publish(kBackboneStage, key, [&](H5File& file) {
    store_state(file, backbone);
    file.set_attribute("/", "weights_hash", run.weights_hash);
  });
  run.report({"backbone", "computed", seconds_since(start), key,
              fmt::format("{}, {} epoch(s) of training", run.spec.backbone.plugin, config.epochs)});
}

std::vector<float> embed_all(Run& run, const at::Tensor& images) {
  const std::int64_t n = images.size(0);
  std::vector<float> out(static_cast<std::size_t>(n * run.dim));
  c10::InferenceMode inference;
  constexpr std::int64_t kBatch = 512;
  for (std::int64_t start = 0; start < n; start += kBatch) {
    const std::int64_t end = std::min(n, start + kBatch);
    auto e = run.backbone->forward(images.slice(0, start, end).to(run.device)).to(torch::kCPU).contiguous();
    if (e.dim() != 2 || e.size(1) != run.dim || e.scalar_type() != torch::kFloat)
      throw Error(fmt::format("backbone '{}' returned {} {}, expected float [batch, {}]", run.spec.backbone.plugin,
                              c10::toString(e.scalar_type()), fmt::join(e.sizes(), "x"), run.dim));
    std::memcpy(out.data() + start * run.dim, e.data_ptr<float>(), sizeof(float) * static_cast<std::size_t>(e.numel()));
  }
  return out;
}

void prepare_embeddings(Run& run) {
  const auto start = Clock::now();
  const std::string key = run.embedding_key();
  const auto gallery_size = static_cast<std::uint64_t>(run.data.gallery.size());
  const auto query_size = static_cast<std::uint64_t>(run.data.query.size());
  const std::vector<std::uint64_t> gallery_shape{gallery_size, static_cast<std::uint64_t>(run.dim)};
  const std::vector<std::uint64_t> query_shape{query_size, static_cast<std::uint64_t>(run.dim)};
  if (auto entry = run.cache.open(kEmbeddingStage, key)) {
    std::vector<std::uint64_t> gs, qs;
    auto gallery = entry->read<float>("/gallery", &gs);
    auto query = entry->read<float>("/query", &qs);
    if (gs == gallery_shape && qs == query_shape) {
      run.gallery_embedding = std::move(gallery);
      run.query_embedding = std::move(query);
      run.report({"embeddings", "reused", seconds_since(start), key, "clean gallery and query embeddings"});
      return;
    }
  }
  run.gallery_embedding = embed_all(run, run.data.gallery.images);
  run.query_embedding = run.data.query.images.is_same(run.data.gallery.images) ? run.gallery_embedding
                                                                                : embed_all(run, run.data.query.images);
  run.cache.publish(kEmbeddingStage, key, [&](H5File& file) {
    file.write("/gallery", run.gallery_embedding.data(), gallery_shape);
    file.write("/query", run.query_embedding.data(), query_shape);
  });
  run.report({"embeddings", "computed", seconds_since(start), key,
              fmt::format("clean embeddings of {} gallery and {} query images", gallery_size, query_size)});
}

// Queries with at least one positive besides themselves (lone queries are excluded, as
// in pytorch-metric-learning), in a seeded order whose prefixes are stable: asking for
// more queries keeps the ones already certified.
std::vector<std::int64_t> select_queries(const Run& run, std::int64_t wanted) {
  std::map<std::int64_t, std::int64_t> count;
  for (auto label : run.gallery_label) ++count[label];
  std::vector<std::int64_t> eligible;
  for (std::size_t i = 0; i < run.query_label.size(); ++i) {
    const std::int64_t self = run.query_gallery_index[i];
    const std::int64_t own = self >= 0 && run.gallery_label[static_cast<std::size_t>(self)] == run.query_label[i];
    if (count[run.query_label[i]] - own >= 1) eligible.push_back(static_cast<std::int64_t>(i));
  }
  // Fisher-Yates with splitmix64, spelled out so the order is the same on every platform.
  std::uint64_t state = derive_seed(run.spec.seed, "queries");
  for (std::size_t i = eligible.size(); i > 1; --i) {
    state += 0x9e3779b97f4a7c15ULL;
    const std::uint64_t r = Hasher(state).digest();
    std::swap(eligible[i - 1], eligible[r % i]);
  }
  if (wanted > 0 && static_cast<std::size_t>(wanted) < eligible.size()) eligible.resize(static_cast<std::size_t>(wanted));
  return eligible;
}

std::vector<Block> plan_blocks(const Run& run, const std::vector<std::int64_t>& selected) {
  const SamplingPlan plan = run.certifier->plan();
  // At least 8 queries a block, and enough to fill a forward batch when n is small.
  const std::int64_t per_block = std::max<std::int64_t>(8, (plan.batch + plan.n - 1) / plan.n);
  const std::string stage_key = run.sample_key();
  std::vector<Block> blocks;
  for (std::size_t start = 0; start < selected.size(); start += static_cast<std::size_t>(per_block)) {
    Block block;
    const std::size_t end = std::min(selected.size(), start + static_cast<std::size_t>(per_block));
    block.rows.assign(selected.begin() + static_cast<std::ptrdiff_t>(start), selected.begin() + static_cast<std::ptrdiff_t>(end));
    Hasher h(Hasher().text(stage_key).digest());
    for (auto row : block.rows) h.u64(static_cast<std::uint64_t>(row));
    block.key = h.hex();
    blocks.push_back(std::move(block));
  }
  return blocks;
}

bool load_block(const Run& run, Block& block) {
  auto entry = run.cache.open(kSampleStage, block.key);
  if (!entry) return false;
  std::vector<std::uint64_t> shape;
  auto ids = entry->read<std::int64_t>("/query_id");
  auto sums = entry->read<double>("/sum", &shape);
  const bool ok = ids == block.rows && entry->attribute_int("/", "n") == run.certifier->plan().n &&
                  shape == std::vector<std::uint64_t>{block.rows.size(), static_cast<std::uint64_t>(run.dim)};
  if (!ok) return false;
  block.sums = std::move(sums);
  block.seconds = entry->attribute_double("/", "seconds");
  block.cached = true;
  return true;
}

// Streams n noisy copies of each query of the block through the backbone, in forward
// batches that may hold several queries, and sums the unit embeddings in double precision
// in sample order (so the sum does not depend on how samples were batched).
void sample_block(Run& run, Block& block, std::atomic<std::int64_t>& samples_done) {
  const auto start = Clock::now();
  at::set_num_threads(run.threads);  // per thread: this runs on a TBB worker
  const SamplingPlan plan = run.certifier->plan();
  const ImageShape shape = input_shape(run.data);
  const std::int64_t pixels = shape.channels * shape.height * shape.width;
  const std::int64_t dim = run.dim;
  const std::uint64_t noise_seed = derive_seed(run.spec.seed, "noise/certify");
  const auto rows = static_cast<std::int64_t>(block.rows.size());
  block.sums.assign(static_cast<std::size_t>(rows * dim), 0.0);
  const float* images = run.data.query.images.data_ptr<float>();

  std::vector<float> buffer(static_cast<std::size_t>(plan.batch * pixels));
  std::vector<std::int64_t> row_query(static_cast<std::size_t>(plan.batch)), row_sample(static_cast<std::size_t>(plan.batch));
  std::int64_t query = 0, sample = 0;
  while (query < rows) {
    std::int64_t filled = 0;
    for (; filled < plan.batch && query < rows; ++filled) {
      row_query[static_cast<std::size_t>(filled)] = query;
      row_sample[static_cast<std::size_t>(filled)] = sample;
      if (++sample == plan.n) {
        sample = 0;
        ++query;
      }
    }
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, filled, 8), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) {
        const std::int64_t local = row_query[static_cast<std::size_t>(i)];
        const std::int64_t id = block.rows[static_cast<std::size_t>(local)];
        float* out = buffer.data() + i * pixels;
        run.noise->sample(noise_seed, id, row_sample[static_cast<std::size_t>(i)], 1, pixels, out);
        const float* clean = images + id * pixels;
        for (std::int64_t j = 0; j < pixels; ++j) out[j] += clean[j];
      }
    });
    at::Tensor embedding;
    {
      c10::InferenceMode inference;
      auto batch = torch::from_blob(buffer.data(), {filled, shape.channels, shape.height, shape.width}, torch::kFloat);
      embedding = run.backbone->forward(batch.to(run.device)).to(torch::kCPU).contiguous();
    }
    const float* e = embedding.data_ptr<float>();
    for (std::int64_t i = 0; i < filled; ++i) {
      const float* row = e + i * dim;
      double norm2 = 0;
      for (std::int64_t d = 0; d < dim; ++d) norm2 += static_cast<double>(row[d]) * row[d];
      if (!(norm2 > 0) || !std::isfinite(norm2))
        throw Error(fmt::format("backbone '{}' returned a zero or non-finite embedding for query {}",
                                run.spec.backbone.plugin, block.rows[static_cast<std::size_t>(row_query[static_cast<std::size_t>(i)])]));
      // f maps to the unit sphere (product.md section 2); renormalising in double keeps
      // ||f|| <= 1, which the McDiarmid bound needs, exact beyond float rounding.
      const double inv = 1.0 / std::sqrt(norm2);
      double* sum = block.sums.data() + row_query[static_cast<std::size_t>(i)] * dim;
      for (std::int64_t d = 0; d < dim; ++d) sum[d] += row[d] * inv;
    }
    samples_done += filled;
  }
  block.seconds = seconds_since(start);
}

void store_block(const Run& run, const Block& block) {
  run.cache.publish(kSampleStage, block.key, [&](H5File& file) {
    file.write("/query_id", block.rows);
    file.write("/sum", block.sums.data(), {block.rows.size(), static_cast<std::uint64_t>(run.dim)});
    file.set_attribute("/", "n", run.certifier->plan().n);
    file.set_attribute("/", "seconds", block.seconds);
  });
}

void certify_block(const Run& run, Block& block, const GalleryView& gallery) {
  const std::int64_t n = run.certifier->plan().n;
  block.certificates.clear();
  for (std::size_t i = 0; i < block.rows.size(); ++i) {
    const auto id = static_cast<std::size_t>(block.rows[i]);
    QueryStats stats{block.rows[i], run.query_label[id], run.query_gallery_index[id], n,
                     block.sums.data() + static_cast<std::int64_t>(i) * run.dim};
    block.certificates.push_back(run.certifier->certify(stats, gallery, run.noise->sigma()));
  }
}

GalleryView gallery_view(const Run& run) {
  return {run.gallery_embedding.data(), run.gallery_label.data(), static_cast<std::int64_t>(run.gallery_label.size()), run.dim};
}

// The per-query-block flow graph. Bodies never let an exception escape into TBB (an
// exception in a node can deadlock a graph, oneTBB #420): the first one is kept, the
// source stops, the remaining messages drain without work, and it is rethrown here.
std::vector<Block> certify_queries(Run& run, std::vector<Block> blocks, std::int64_t& reused_blocks) {
  const auto start = Clock::now();
  const SamplingPlan plan = run.certifier->plan();
  reused_blocks = 0;
  for (auto& block : blocks) reused_blocks += load_block(run, block);
  std::int64_t to_compute = 0;
  for (const auto& block : blocks) to_compute += block.cached ? 0 : static_cast<std::int64_t>(block.rows.size()) * plan.n;

  const GalleryView gallery = gallery_view(run);
  Progress progress(run.log ? *run.log : std::cerr, "certify", "samples", to_compute, run.log != nullptr && to_compute > 0);
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
  std::size_t next = 0;
  flow::input_node<Block*> source(graph, [&](tbb::flow_control& control) -> Block* {
    if (failed || next >= blocks.size()) {
      control.stop();
      return nullptr;
    }
    return &blocks[next++];
  });
  flow::limiter_node<Block*> limiter(graph, 2);  // bounded memory: two blocks in flight
  flow::function_node<Block*, Block*> sampler(graph, flow::serial, guarded([&](Block& b) {
    if (!b.cached) sample_block(run, b, samples_done);
  }));
  flow::function_node<Block*, Block*> writer(graph, flow::serial, guarded([&](Block& b) {
    if (!b.cached) store_block(run, b);  // the only node that writes HDF5
    progress.update(samples_done.load());
  }));
  flow::function_node<Block*, Block*> certify(graph, flow::unlimited, guarded([&](Block& b) {
    certify_block(run, b, gallery);
  }));
  flow::function_node<Block*, flow::continue_msg> done(graph, flow::serial, [](Block*) { return flow::continue_msg(); });
  flow::make_edge(source, limiter);
  flow::make_edge(limiter, sampler);
  flow::make_edge(sampler, writer);
  flow::make_edge(writer, certify);
  flow::make_edge(certify, done);
  flow::make_edge(done, limiter.decrementer());
  source.activate();
  graph.wait_for_all();
  progress.finish();
  if (error) std::rethrow_exception(error);

  const auto total_blocks = static_cast<std::int64_t>(blocks.size());
  std::string status = reused_blocks == total_blocks ? "reused"
                       : reused_blocks == 0          ? "computed"
                                                     : fmt::format("resumed");
  const double elapsed = seconds_since(start);
  run.report({"samples", status, elapsed, run.sample_key(),
              fmt::format("{} queries x {} samples, {} of {} blocks reused{}", [&] {
                std::int64_t q = 0;
                for (const auto& b : blocks) q += static_cast<std::int64_t>(b.rows.size());
                return q;
              }(), plan.n, reused_blocks, total_blocks,
                          to_compute > 0 ? fmt::format(", {} samples/s", human_count(static_cast<double>(to_compute) / elapsed)) : "")});
  return blocks;
}

PointResult collect_point(Run& run, std::vector<Block>& blocks) {
  const auto start = Clock::now();
  PointResult point;
  point.name = "main";
  point.sigma = run.noise->sigma();
  point.alpha = run.certifier->alpha();
  point.n = run.certifier->plan().n;
  struct Row {
    Certificate certificate;
    const double* sum;
    double seconds;
  };
  std::vector<Row> rows;
  for (auto& block : blocks)
    for (std::size_t i = 0; i < block.rows.size(); ++i)
      rows.push_back({block.certificates[i], block.sums.data() + static_cast<std::int64_t>(i) * run.dim,
                      block.seconds / static_cast<double>(block.rows.size())});
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.certificate.query_id < b.certificate.query_id; });
  std::vector<float> query_embedding;
  std::vector<std::int64_t> query_label, query_id;
  for (const auto& row : rows) {
    const auto id = static_cast<std::size_t>(row.certificate.query_id);
    point.certificates.push_back(row.certificate);
    point.query_gallery_index.push_back(run.query_gallery_index[id]);
    for (std::int64_t d = 0; d < run.dim; ++d) point.mean_embedding.push_back(row.sum[d] / static_cast<double>(point.n));
    point.seconds.push_back(row.seconds);
    query_embedding.insert(query_embedding.end(), run.query_embedding.begin() + static_cast<std::ptrdiff_t>(id * static_cast<std::size_t>(run.dim)),
                           run.query_embedding.begin() + static_cast<std::ptrdiff_t>((id + 1) * static_cast<std::size_t>(run.dim)));
    query_label.push_back(run.query_label[id]);
    query_id.push_back(row.certificate.query_id);
  }
  point.rho = point.certificates.empty() ? 0 : point.certificates.front().rho;
  run.report({"certificates", "computed", seconds_since(start), "",
              fmt::format("{} certificates (no forward pass)", point.certificates.size())});

  const auto metrics_start = Clock::now();
  EvalView eval;
  eval.gallery = gallery_view(run);
  eval.queries = {query_embedding.data(), query_label.data(), point.query_gallery_index.data(), query_id.data(),
                  static_cast<std::int64_t>(query_id.size())};
  eval.certificates = &point.certificates;
  eval.sigma = point.sigma;
  for (const auto& metric : run.metrics)
    for (auto& value : metric->compute(eval)) point.metrics.push_back(std::move(value));
  run.report({"metrics", "computed", seconds_since(metrics_start), "", fmt::format("{} values", point.metrics.size())});
  return point;
}

}  // namespace

RunResult run_pipeline(const PipelineSpec& spec, const PluginLoader& loader, const RunOptions& options) {
  const auto start = Clock::now();
  Run run(spec, loader, options.log);
  create_plugins(run);
  load_dataset(run);
  prepare_backbone(run);
  prepare_embeddings(run);
  const auto selected = select_queries(run, run.certifier->plan().queries);
  if (selected.empty())
    throw Error(fmt::format("{}: no query has a positive in the gallery; check the dataset's classes", spec.file));
  std::int64_t reused_blocks = 0;
  auto blocks = certify_queries(run, plan_blocks(run, selected), reused_blocks);

  RunResult result;
  result.dim = run.dim;
  result.gallery_embedding = run.gallery_embedding;
  result.gallery_label = run.gallery_label;
  result.points.push_back(collect_point(run, blocks));
  result.stages = run.stages;
  result.seconds = seconds_since(start);
  if (options.write_outputs) result.output_dir = write_run_outputs(spec, result);
  return result;
}

std::vector<StageReport> cache_status(const PipelineSpec& spec, const PluginLoader& loader) {
  Run run(spec, loader, nullptr);
  create_plugins(run);
  load_dataset(run);
  std::vector<StageReport> out;
  out.push_back(run.stages.front());
  const std::string backbone_key = run.backbone_key();
  auto entry = run.cache.open(kBackboneStage, backbone_key);
  out.push_back({"backbone", entry ? "cached" : "missing", 0, backbone_key, spec.backbone.plugin});
  if (!entry) {
    out.push_back({"embeddings", "missing", 0, "", "needs the backbone"});
    out.push_back({"samples", "missing", 0, "", "needs the backbone"});
    return out;
  }
  run.weights_hash = entry->attribute_string("/", "weights_hash");
  run.backbone->init(input_shape(run.data), 0);
  run.dim = run.backbone->embedding_dim();
  const std::string embedding_key = run.embedding_key();
  out.push_back({"embeddings", run.cache.open(kEmbeddingStage, embedding_key) ? "cached" : "missing", 0, embedding_key, ""});
  auto blocks = plan_blocks(run, select_queries(run, run.certifier->plan().queries));
  std::int64_t cached = 0;
  for (auto& block : blocks) cached += load_block(run, block);
  const auto total = static_cast<std::int64_t>(blocks.size());
  out.push_back({"samples", cached == total ? "cached" : cached == 0 ? "missing" : "partial", 0, run.sample_key(),
                 fmt::format("{} of {} query blocks cached", cached, total)});
  return out;
}

}  // namespace rguard
