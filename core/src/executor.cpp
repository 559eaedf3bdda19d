#include "rguard/executor.hpp"

#include "run_session.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <tbb/flow_graph.h>
#include <tbb/task_arena.h>

#include <semaphore>
#include <torch/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "rguard/adversarial.hpp"
#include "rguard/attack.hpp"
#include "rguard/attack_io.hpp"
#include "rguard/audit.hpp"
#include "rguard/backbone.hpp"
#include "rguard/bounds.hpp"
#include "rguard/cache.hpp"
#include "rguard/dataset.hpp"
#include "rguard/destination.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/loader.hpp"
#include "rguard/noise.hpp"
#include "rguard/outputs.hpp"
#include "rguard/progress.hpp"
#include "rguard/tensors.hpp"
#include "rguard/weights.hpp"

namespace rguard {

using namespace run;

namespace {

std::vector<std::int64_t> to_int64_vector(const at::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

// ---- keys ---------------------------------------------------------------------------

std::string backbone_key(const Session& s, const PipelineSpec& spec, const Backbone& backbone, const LoadedData& data) {
  return Hasher().text("backbone/1").text(data.fingerprint).text(spec.backbone.canonical()).text(backbone.fingerprint())
      .u64(spec.seed).text(s.device.str()).hex();
}

// The backbone plugin's name and version: its forward pass (kernels, numerics) is part of
// what embeddings and samples depend on, beyond the weights.
std::string forward_identity(const StageSpec& backbone) {
  return fmt::format("{}@{}", backbone.plugin, backbone.entry ? backbone.entry->version : "?");
}

std::string embedding_key(const Session& s, const Model& model) {
  return Hasher()
      .text("embeddings/1")
      .text(forward_identity(model.spec->backbone))
      .text(model.weights_hash)
      .text(model.data->fingerprint)
      .text(s.device.str())
      .hex();
}

std::string sample_key(const Session& s, const Point& p) {
  Hasher h;
  h.text("samples/1")
      .text(forward_identity(p.spec->backbone))
      .text(p.model->weights_hash)
      .text(p.data->fingerprint)
      .text(p.spec->noise.canonical())
      .u64(static_cast<std::uint64_t>(p.certifier->plan().n))
      .u64(p.spec->seed)
      .text(s.device.str());
  // Blocks with second moments hold more; keys without them stay what they were.
  if (p.certifier->plan().second_moments) h.text("second moments");
  return h.hex();
}

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

// Data sets read from files (a non-empty source fingerprint: paths, sizes, mtimes) keep
// their decoded images in the cache, as uint8 (what the decoders deliver; float images
// are stored as round(255 x), exact for k/255 values): a rerun skips decoding and keeps
// them as uint8. Their data fingerprint is this key (the images are a function of it),
// so a rerun does not hash the images either. Others load and are hashed.
std::string load_or_decode(Session& s, Point& p, RetrievalData& data, std::string& data_fingerprint) {
  auto plugin = [&](auto&& call) {
    return with_context([&] { return plugin_failure(*p.spec, p.spec->dataset, "while loading"); }, call);
  };
  const std::string source = plugin([&] { return p.dataset->source_fingerprint(); });
  if (source.empty()) {
    data = plugin([&] { return p.dataset->load(); });
    data_fingerprint = fingerprint(data);
    return "loaded";
  }
  const std::string key = Hasher().text("dataset/1").text(p.spec->dataset.canonical()).text(source).hex();
  data_fingerprint = Hasher().text("data/from-source").text(key).hex();
  auto to_bytes = [](const at::Tensor& images) {
    if (images.scalar_type() == torch::kUInt8) return images.contiguous();
    return images.mul(255.0).round().to(torch::kUInt8).contiguous();
  };
  auto from_bytes = [](std::vector<std::uint8_t> bytes, const std::vector<std::uint64_t>& shape) {
    // The tensor takes the vector over, without a copy: SOP's images are 18 GB.
    auto owner = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes));
    std::vector<std::int64_t> sizes(shape.begin(), shape.end());
    return torch::from_blob(owner->data(), sizes, [owner](void*) {}, torch::kUInt8);
  };
  if (auto entry = s.cache.open("dataset", key)) {
    std::vector<std::uint64_t> shape;
    for (auto [name, set] : {std::pair<const char*, ImageSet*>{"train", &data.train}, {"query", &data.query}}) {
      auto bytes = entry->read<std::uint8_t>(fmt::format("/{}/images", name), &shape);
      set->images = from_bytes(std::move(bytes), shape);
      const auto labels = entry->read<std::int64_t>(fmt::format("/{}/labels", name));
      set->labels = torch::tensor(labels, torch::kLong);
    }
    data.gallery = data.query;  // image data sets are leave-one-out
    data.query_gallery_index = torch::tensor(entry->read<std::int64_t>("/query_gallery_index"), torch::kLong);
    data.description = entry->attribute_string("/", "description");
    return "reused";
  }
  data = plugin([&] { return p.dataset->load(); });
  if (!data.gallery.images.is_same(data.query.images)) return "loaded";  // only leave-one-out is cached
  s.cache.publish("dataset", key, [&](H5File& file) {
    for (auto [name, set] : {std::pair<const char*, const ImageSet*>{"train", &data.train}, {"query", &data.query}}) {
      const auto bytes = to_bytes(set->images);
      std::vector<std::uint64_t> shape(bytes.sizes().begin(), bytes.sizes().end());
      file.write(fmt::format("/{}/images", name), bytes.data_ptr<std::uint8_t>(), shape);
      file.write(fmt::format("/{}/labels", name), to_int64_vector(set->labels));
    }
    file.write("/query_gallery_index", to_int64_vector(data.query_gallery_index));
    file.set_attribute("/", "description", data.description);
  });
  return "computed";
}

void load_datasets(Session& s) {
  for (auto& p : s.points) {
    const std::string canonical = p->spec->dataset.canonical();
    auto& slot = s.datasets[canonical];
    if (!slot) {
      const auto start = Clock::now();
      auto loaded = std::make_unique<LoadedData>();
      const std::string status = load_or_decode(s, *p, loaded->data, loaded->fingerprint);
      with_context([&] { return plugin_failure(*p->spec, p->spec->dataset, "delivered unusable data"); },
                   [&] { validate_retrieval_data(loaded->data, p->spec->dataset.plugin); });
      for (ImageSet* set : {&loaded->data.train, &loaded->data.query, &loaded->data.gallery})
        if (set->images.defined()) set->images = set->images.contiguous();
      loaded->gallery_label = to_int64_vector(loaded->data.gallery.labels);
      loaded->query_label = to_int64_vector(loaded->data.query.labels);
      loaded->query_gallery_index = to_int64_vector(loaded->data.query_gallery_index);
      s.report({"", "dataset", status, seconds_since(start), "",
                fmt::format("{}: {} (fingerprint {})", p->spec->dataset.plugin, loaded->data.description,
                            loaded->fingerprint.substr(0, 12))});
      slot = std::move(loaded);
    }
    p->data = slot.get();
  }
}

void assign_models(Session& s) {
  for (auto& p : s.points) {
    const std::string key =
        with_context([&] { return plugin_failure(*p->spec, p->spec->backbone, "while fingerprinting its files"); },
                     [&] { return backbone_key(s, *p->spec, *p->backbone, *p->data); });
    auto& slot = s.models[key];
    if (!slot) {
      slot = std::make_unique<Model>();
      slot->backbone = p->backbone;
      slot->spec = p->spec;
      slot->data = p->data;
      slot->key = key;
    }
    p->model = slot.get();
  }
}

// ---- backbone and clean embeddings ------------------------------------------------------

std::vector<float> embed_all(const Session& s, Model& m, const at::Tensor& images) {
  const std::int64_t n = images.size(0);
  std::vector<float> out(static_cast<std::size_t>(n * m.dim));
  c10::InferenceMode inference;
  constexpr std::int64_t kBatch = 512;
  for (std::int64_t start = 0; start < n; start += kBatch) {
    const std::int64_t end = std::min(n, start + kBatch);
    auto e = m.backbone->forward(as_pixels(images.slice(0, start, end)).to(s.device)).to(torch::kCPU).contiguous();
    const std::string who = fmt::format("backbone plugin '{}'", m.spec->backbone.plugin);
    check_embedding_shape(e, end - start, m.dim, who);
    check_embedding_rows(e.data_ptr<float>(), end - start, m.dim, who,
                         [&](std::int64_t i) { return fmt::format("clean image {}", start + i); });
    std::memcpy(out.data() + start * m.dim, e.data_ptr<float>(), sizeof(float) * static_cast<std::size_t>(e.numel()));
  }
  return out;
}

bool try_restore_backbone(Session& s, Model& m) {
  auto entry = s.cache.open(kBackboneStage, m.key);
  if (!entry) return false;
  try {
    restore_weights(*entry, *m.backbone);
    m.weights_hash = hash_weights(*m.backbone);
    if (entry->attribute_string("/", "weights_hash") != m.weights_hash)
      throw Error(fmt::format("{}: weights do not match their recorded hash", entry->path()));
    return true;
  } catch (const Error& e) {
    if (s.log) *s.log << "warning: " << e.what() << "; retraining\n";
    m.backbone->init(m.data->shape(), derive_seed(m.spec->seed, "backbone/init"));
    m.backbone->to(s.device);
    return false;
  }
}

void prepare_backbone(Session& s, Model& m) {
  const auto start = Clock::now();
  auto& backbone = *m.backbone;
  backbone.init(m.data->shape(), derive_seed(m.spec->seed, "backbone/init"));
  backbone.to(s.device);
  m.dim = backbone.embedding_dim();
  const bool forced = s.forced(kBackboneStage);
  if (!forced && try_restore_backbone(s, m)) {
    backbone.set_training(false);
    s.report({m.spec->point, "backbone", "reused", seconds_since(start), m.key, m.spec->backbone.plugin});
    return;
  }
  CacheLock lock = s.cache.lock(kBackboneStage, m.key);  // another run may be training it
  if (!forced && try_restore_backbone(s, m)) {
    backbone.set_training(false);
    s.report({m.spec->point, "backbone", "reused", seconds_since(start), m.key,
              m.spec->backbone.plugin + " (trained by a concurrent run)"});
    return;
  }
  const TrainConfig& config = backbone.train_config();
  if (config.epochs > 0 && m.data->data.train.size() == 0)
    throw Error(fmt::format("{}: backbone.train.epochs is {} but the dataset has no train split; set it to 0",
                            m.spec->file, config.epochs));
  // A run killed while training resumes from its last finished epoch.
  std::optional<TrainCheckpoint> resume;
  if (!forced && config.epochs > 0)
    if (auto entry = s.cache.open(kCheckpointStage, m.key)) {
      try {
        restore_weights(*entry, backbone);
        TrainCheckpoint c;
        c.epochs_done = entry->attribute_int("/", "epochs_done");
        c.beta = entry->attribute_double("/", "beta");
        const auto optimiser = entry->read<std::uint8_t>("/optimiser");
        c.optimiser.assign(optimiser.begin(), optimiser.end());
        c.generator = entry->read<std::uint8_t>("/generator");
        if (c.epochs_done < config.epochs) resume = std::move(c);
      } catch (const Error& e) {
        if (s.log) *s.log << "warning: " << e.what() << "; training from the start\n";
      }
      if (!resume) {
        backbone.init(m.data->shape(), derive_seed(m.spec->seed, "backbone/init"));
        backbone.to(s.device);
      }
    }
  Progress progress(s.log ? *s.log : std::cerr, "train", "images", 1, s.log != nullptr);
  train_backbone(
      backbone, m.data->data.train, config, derive_seed(m.spec->seed, "backbone/train"),
      [&](std::int64_t done, std::int64_t total, double loss) {
        progress.set_total(total);
        progress.update(done, fmt::format("loss {:.4f}", loss));
      },
      resume ? &*resume : nullptr,
      [&](const TrainCheckpoint& c) {
        outside_plugin([&] {
          s.cache.publish(kCheckpointStage, m.key, [&](H5File& file) {
            store_weights(file, backbone);
            const std::vector<std::uint8_t> optimiser(c.optimiser.begin(), c.optimiser.end());
            file.write("/optimiser", optimiser);
            file.write("/generator", c.generator);
            file.set_attribute("/", "epochs_done", c.epochs_done);
            file.set_attribute("/", "beta", c.beta);
          });
        });
      });
  progress.finish();
  backbone.set_training(false);
  m.weights_hash = hash_weights(backbone);
  outside_plugin([&] {
    s.cache.publish(kBackboneStage, m.key, [&](H5File& file) {
      store_weights(file, backbone);
      file.set_attribute("/", "weights_hash", m.weights_hash);
    });
  });
  s.report({m.spec->point, "backbone", resume ? "resumed" : "computed", seconds_since(start), m.key,
            resume ? fmt::format("{}, training resumed after epoch {} of {}", m.spec->backbone.plugin, resume->epochs_done,
                                 config.epochs)
                   : fmt::format("{}, {} epoch(s) of training", m.spec->backbone.plugin, config.epochs)});
}

bool try_read_embeddings(const Session& s, Model& m) {
  auto entry = s.cache.open(kEmbeddingStage, m.embedding_key);
  if (!entry) return false;
  const auto& d = m.data->data;
  std::vector<std::uint64_t> gs, qs;
  auto gallery = entry->read<float>("/gallery", &gs);
  auto query = entry->read<float>("/query", &qs);
  if (gs != std::vector<std::uint64_t>{static_cast<std::uint64_t>(d.gallery.size()), static_cast<std::uint64_t>(m.dim)} ||
      qs != std::vector<std::uint64_t>{static_cast<std::uint64_t>(d.query.size()), static_cast<std::uint64_t>(m.dim)})
    return false;
  m.gallery_embedding = std::move(gallery);
  m.query_embedding = std::move(query);
  return true;
}

void prepare_embeddings(Session& s, Model& m) {
  const auto start = Clock::now();
  m.embedding_key = embedding_key(s, m);
  const bool forced = s.forced(kEmbeddingStage);
  if (!forced && try_read_embeddings(s, m)) {
    s.report({m.spec->point, "embeddings", "reused", seconds_since(start), m.embedding_key, "clean embeddings"});
    return;
  }
  CacheLock lock = s.cache.lock(kEmbeddingStage, m.embedding_key);
  if (!forced && try_read_embeddings(s, m)) {
    s.report({m.spec->point, "embeddings", "reused", seconds_since(start), m.embedding_key, "clean embeddings"});
    return;
  }
  const auto& d = m.data->data;
  m.gallery_embedding = embed_all(s, m, d.gallery.images);
  m.query_embedding = d.query.images.is_same(d.gallery.images) ? m.gallery_embedding : embed_all(s, m, d.query.images);
  outside_plugin([&] {
    s.cache.publish(kEmbeddingStage, m.embedding_key, [&](H5File& file) {
      file.write("/gallery", m.gallery_embedding.data(), {static_cast<std::uint64_t>(d.gallery.size()), static_cast<std::uint64_t>(m.dim)});
      file.write("/query", m.query_embedding.data(), {static_cast<std::uint64_t>(d.query.size()), static_cast<std::uint64_t>(m.dim)});
    });
  });
  s.report({m.spec->point, "embeddings", "computed", seconds_since(start), m.embedding_key,
            fmt::format("clean embeddings of {} gallery and {} query images", d.gallery.size(), d.query.size())});
}

// The models of all points as branches of a flow graph. LibTorch work takes the
// session's torch lock (torch owns the cores).
void prepare_models(Session& s) {
  namespace flow = tbb::flow;
  flow::graph graph;
  flow::broadcast_node<flow::continue_msg> start(graph);
  std::exception_ptr error;
  std::mutex error_lock;
  std::vector<std::unique_ptr<flow::continue_node<flow::continue_msg>>> nodes;
  for (auto& [key, model] : s.models) {
    Model* m = model.get();
    nodes.push_back(std::make_unique<flow::continue_node<flow::continue_msg>>(graph, [&, m](const flow::continue_msg&) {
      try {
        std::lock_guard torch(s.torch_lock);
        at::set_num_threads(s.threads);
        const StageSpec& backbone = m->spec->backbone;
        with_context([&] { return plugin_failure(*m->spec, backbone, "while training or loading its weights"); },
                     [&] { prepare_backbone(s, *m); });
        with_context([&] { return plugin_failure(*m->spec, backbone, "while computing clean embeddings"); },
                     [&] { prepare_embeddings(s, *m); });
        m->gallery_unit = unit_rows(m->gallery_embedding.data(), static_cast<std::int64_t>(m->data->gallery_label.size()), m->dim);
      } catch (...) {
        std::lock_guard lock(error_lock);
        if (!error) error = std::current_exception();
      }
      return flow::continue_msg();
    }));
    flow::make_edge(start, *nodes.back());
  }
  start.try_put(flow::continue_msg());
  graph.wait_for_all();
  if (error) std::rethrow_exception(error);
}

// ---- query blocks -----------------------------------------------------------------------

// Queries that retrieval can get right or wrong: at least one positive besides themselves
// (lone queries are excluded, as in pytorch-metric-learning) and at least one negative
// (without one, Recall@1 is 1 whatever the model and every radius infinite). They come in
// a seeded order whose prefixes are stable: asking for more queries keeps the ones
// already certified. A data set where no query qualifies is refused, before any training.
std::vector<std::int64_t> select_queries(Session& s, const Point& p) {
  const auto& d = *p.data;
  std::map<std::int64_t, std::int64_t> count;
  for (auto label : d.gallery_label) ++count[label];
  const auto gallery = static_cast<std::int64_t>(d.gallery_label.size());
  std::vector<std::int64_t> eligible;
  std::int64_t lone = 0, no_negative = 0;
  for (std::size_t i = 0; i < d.query_label.size(); ++i) {
    const std::int64_t self = d.query_gallery_index[i];
    const std::int64_t own = self >= 0 && d.gallery_label[static_cast<std::size_t>(self)] == d.query_label[i];
    const std::int64_t positives = count[d.query_label[i]] - own;
    const std::int64_t negatives = gallery - count[d.query_label[i]] - (self >= 0 && !own);
    if (positives < 1) ++lone;
    else if (negatives < 1) ++no_negative;
    else eligible.push_back(static_cast<std::int64_t>(i));
  }
  const std::string dataset = fmt::format("{}: dataset plugin '{}'", p.spec->dataset.location.str(), p.spec->dataset.plugin);
  if (eligible.empty() && no_negative > 0)
    throw Error(fmt::format("{}: no query can be certified: the gallery holds a single class ({} queries have no item "
                            "of another class to be confused with), so Recall@1 is 1 whatever the model; evaluate on at "
                            "least two classes",
                            dataset, no_negative));
  if (eligible.empty())
    throw Error(fmt::format("{}: no query can be certified: none of the {} queries has another item of its class in "
                            "the gallery; check the dataset's classes and protocol",
                            dataset, d.query_label.size()));
  if ((lone > 0 || no_negative > 0) && s.log)
    *s.log << fmt::format("[{:<12}] {} of {} queries cannot be certified and are left out: {} without another item of "
                          "their class in the gallery, {} without an item of another class\n",
                          "queries", lone + no_negative, d.query_label.size(), lone, no_negative);
  // Fisher-Yates with splitmix64, spelled out so the order is the same on every platform.
  std::uint64_t state = derive_seed(p.spec->seed, "queries");
  for (std::size_t i = eligible.size(); i > 1; --i) {
    state += 0x9e3779b97f4a7c15ULL;
    const std::uint64_t r = Hasher(state).digest();
    std::swap(eligible[i - 1], eligible[r % i]);
  }
  const std::int64_t wanted = p.certifier->plan().queries;
  if (wanted > 0 && static_cast<std::size_t>(wanted) < eligible.size()) eligible.resize(static_cast<std::size_t>(wanted));
  return eligible;
}

void plan_blocks(const Session& s, Point& p) {
  const SamplingPlan plan = p.certifier->plan();
  p.sample_key = sample_key(s, p);
  // At least 8 queries a block, and enough to fill a forward batch when n is small.
  const std::size_t per_block = static_cast<std::size_t>(std::max<std::int64_t>(8, (plan.batch + plan.n - 1) / plan.n));
  const auto& selected = p.queries;
  p.blocks.clear();
  for (std::size_t start = 0; start < selected.size(); start += per_block) {
    Block block;
    block.point = &p;
    const std::size_t end = std::min(selected.size(), start + per_block);
    block.rows.assign(selected.begin() + static_cast<std::ptrdiff_t>(start), selected.begin() + static_cast<std::ptrdiff_t>(end));
    Hasher h(Hasher().text(p.sample_key).digest());
    for (auto row : block.rows) h.u64(static_cast<std::uint64_t>(row));
    block.key = h.hex();
    p.blocks.push_back(std::move(block));
  }
}

bool load_block(const Session& s, Block& block) {
  auto entry = s.cache.open(kSampleStage, block.key);
  if (!entry) return false;
  const Point& p = *block.point;
  std::vector<std::uint64_t> shape;
  auto ids = entry->read<std::int64_t>("/query_id");
  auto sums = entry->read<double>("/sum", &shape);
  const auto rows = static_cast<std::uint64_t>(block.rows.size()), dim = static_cast<std::uint64_t>(p.model->dim);
  const bool ok = ids == block.rows && entry->attribute_int("/", "n") == p.certifier->plan().n &&
                  shape == std::vector<std::uint64_t>{rows, dim};
  if (!ok) return false;
  if (p.certifier->plan().second_moments) {
    if (!entry->exists("/sum_squares")) return false;
    auto squares = entry->read<double>("/sum_squares", &shape);
    if (shape != std::vector<std::uint64_t>{rows, static_cast<std::uint64_t>(packed_size(p.model->dim))}) return false;
    block.sum_squares = std::move(squares);
  }
  block.sums = std::move(sums);
  block.seconds = entry->attribute_double("/", "seconds");
  block.cached = true;
  return true;
}

void sample_block(Session& s, Block& block, std::atomic<std::int64_t>& samples_done) {
  const auto start = Clock::now();
  const Point& p = *block.point;
  const ImageShape shape = p.data->shape();
  const std::int64_t pixels = shape.channels * shape.height * shape.width;
  // This block's clean images as float pixels (the data set may hold uint8).
  const at::Tensor clean =
      as_pixels(p.data->data.query.images.index_select(0, torch::tensor(block.rows, torch::kLong))).contiguous();
  std::vector<const float*> rows;
  for (std::size_t i = 0; i < block.rows.size(); ++i) rows.push_back(clean.data_ptr<float>() + static_cast<std::int64_t>(i) * pixels);
  accumulate_samples(s, p, rows, block.rows, p.certifier->plan().n, derive_seed(p.spec->seed, "noise/certify"),
                     block.sums, p.certifier->plan().second_moments ? &block.sum_squares : nullptr, &samples_done);
  block.seconds = seconds_since(start);
}

void store_block(const Session& s, const Block& block) {
  const Point& p = *block.point;
  s.cache.publish(kSampleStage, block.key, [&](H5File& file) {
    file.write("/query_id", block.rows);
    const auto dim = static_cast<std::uint64_t>(p.model->dim);
    file.write("/sum", block.sums.data(), {block.rows.size(), dim});
    if (!block.sum_squares.empty())
      file.write("/sum_squares", block.sum_squares.data(),
                 {block.rows.size(), static_cast<std::uint64_t>(packed_size(p.model->dim))});
    file.set_attribute("/", "n", p.certifier->plan().n);
    file.set_attribute("/", "seconds", block.seconds);
  });
}

void certify_block(Block& block) {
  const Point& p = *block.point;
  const auto& d = *p.data;
  const GalleryView gallery = p.model->gallery();
  const std::int64_t n = p.certifier->plan().n;
  block.certificates.clear();
  for (std::size_t i = 0; i < block.rows.size(); ++i) {
    const auto id = static_cast<std::size_t>(block.rows[i]);
    const std::int64_t dim = p.model->dim;
    QueryStats stats{block.rows[i], d.query_label[id], d.query_gallery_index[id], n,
                     block.sums.data() + static_cast<std::int64_t>(i) * dim,
                     block.sum_squares.empty() ? nullptr
                                               : block.sum_squares.data() + static_cast<std::int64_t>(i) * packed_size(dim)};
    block.certificates.push_back(p.certifier->certify(stats, gallery, p.noise->sigma()));
  }
}

// The per-query-block pipeline, shared by all points: the sampler on the calling thread
// (LibTorch owns the cores), then a flow graph with one serial writer (the only HDF5
// writer) and parallel certification. Bodies never let an exception escape into TBB (an
// exception in a node can deadlock a graph, oneTBB #420): the first one is kept, the
// sampler stops, the blocks in flight drain without work, and it is rethrown here.
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
        else to_compute += static_cast<std::int64_t>(block.rows.size()) * p->certifier->plan().n;
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
    std::int64_t queries = 0;
    double sampling = 0;  // this point's own share of the sampling time
    for (const auto& b : p->blocks) {
      queries += static_cast<std::int64_t>(b.rows.size());
      if (!b.cached) sampling += b.seconds;
    }
    const std::int64_t mine = p->shard_blocks;
    const std::string status = p->reused_blocks == mine ? "reused" : p->reused_blocks == 0 ? "computed" : "resumed";
    const std::string shard =
        s.shards > 1 ? fmt::format(", shard {}/{}: {} of the {} blocks", s.shard, s.shards, mine, total) : "";
    s.report({p->spec->point, "samples", status, sampling, p->sample_key,
              fmt::format("{} queries x {} samples, {} of {} blocks reused{}", queries, p->certifier->plan().n,
                          p->reused_blocks, mine, shard)});
  }
  if (to_compute > 0 && s.log)
    *s.log << fmt::format("[{:<12}] {} noisy samples in {:.1f} s, {} samples/s\n", "samples", human_count(static_cast<double>(to_compute)),
                          elapsed, human_count(static_cast<double>(to_compute) / elapsed));
}

PointResult collect_point(Session& s, Point& p) {
  const auto start = Clock::now();
  const Model& m = *p.model;
  PointResult point;
  point.name = p.spec->point;
  point.sigma = p.noise->sigma();
  point.alpha = p.certifier->alpha();
  point.n = p.certifier->plan().n;
  struct Row {
    Certificate certificate;
    const double* sum;
    const double* sum_squares;  // null without second moments
    double seconds;
  };
  const std::int64_t packed = packed_size(m.dim);
  std::vector<Row> rows;
  for (auto& block : p.blocks)
    for (std::size_t i = 0; i < block.rows.size(); ++i)
      rows.push_back({block.certificates[i], block.sums.data() + static_cast<std::int64_t>(i) * m.dim,
                      block.sum_squares.empty() ? nullptr : block.sum_squares.data() + static_cast<std::int64_t>(i) * packed,
                      block.seconds / static_cast<double>(block.rows.size())});
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.certificate.query_id < b.certificate.query_id; });
  std::vector<float> query_embedding;
  std::vector<std::int64_t> query_label, query_id;
  for (const auto& row : rows) {
    const auto id = static_cast<std::size_t>(row.certificate.query_id);
    point.certificates.push_back(row.certificate);
    point.query_gallery_index.push_back(p.data->query_gallery_index[id]);
    for (std::int64_t d = 0; d < m.dim; ++d) point.mean_embedding.push_back(row.sum[d] / static_cast<double>(point.n));
    if (row.sum_squares) point.sum_squares.insert(point.sum_squares.end(), row.sum_squares, row.sum_squares + packed);
    point.seconds.push_back(row.seconds);
    const auto first = m.query_embedding.begin() + static_cast<std::ptrdiff_t>(id * static_cast<std::size_t>(m.dim));
    query_embedding.insert(query_embedding.end(), first, first + m.dim);
    query_label.push_back(p.data->query_label[id]);
    query_id.push_back(row.certificate.query_id);
  }
  std::vector<double> rhos;
  for (const auto& c : point.certificates) rhos.push_back(c.rho);
  std::sort(rhos.begin(), rhos.end());
  point.rho = rhos.empty() ? 0 : rhos[rhos.size() / 2];
  point.attacks = audit_point(s, p, point);
  EvalView eval;
  eval.gallery = m.gallery();
  eval.queries = {query_embedding.data(), query_label.data(), point.query_gallery_index.data(), query_id.data(),
                  static_cast<std::int64_t>(query_id.size())};
  std::vector<std::int64_t> all_ids(p.data->query_label.size());
  for (std::size_t i = 0; i < all_ids.size(); ++i) all_ids[i] = static_cast<std::int64_t>(i);
  eval.all_queries = {m.query_embedding.data(), p.data->query_label.data(), p.data->query_gallery_index.data(),
                      all_ids.data(), static_cast<std::int64_t>(all_ids.size())};
  eval.certificates = &point.certificates;
  eval.attacks = &point.attacks;
  eval.sigma = point.sigma;
  eval.alpha = point.alpha;
  for (std::size_t i = 0; i < p.metrics.size(); ++i) {
    auto values = with_context([&] { return plugin_failure(*p.spec, p.spec->metrics[i], "while computing"); },
                               [&] { return p.metrics[i]->compute(eval); });
    for (auto& value : values) point.metrics.push_back(std::move(value));
  }
  s.report({p.spec->point, "certificates", "computed", seconds_since(start), "",
            fmt::format("{} certificates and {} metric values (no forward pass)", point.certificates.size(),
                        point.metrics.size())});
  return point;
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
  static const std::vector<std::string> stages{kBackboneStage, kEmbeddingStage, kSampleStage};
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
  const Model& first = *s.points.front()->model;
  result.dim = first.dim;
  result.gallery_embedding = first.gallery_embedding;
  result.gallery_label = first.data->gallery_label;
  result.stages = s.stages;
  for (const auto& [key, model] : s.models) {
    result.cache_entries.push_back({kBackboneStage, key});
    result.cache_entries.push_back({kEmbeddingStage, model->embedding_key});
  }
  for (const auto& p : s.points)
    for (const auto& b : p->blocks) result.cache_entries.push_back({kSampleStage, b.key});
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

namespace rguard::run {

// Streams n noisy copies of each image through the backbone, in forward batches that may
// hold several images, and sums the unit embeddings in double precision in sample order
// (so the sum does not depend on how samples were batched). Image i's noise is keyed by
// noise_ids[i]; sums is [images x dim], sum_squares (if asked) [images x dim (dim + 1) / 2].
void accumulate_samples(const Session& s, const Point& p, const std::vector<const float*>& images,
                        const std::vector<std::int64_t>& noise_ids, std::int64_t n, std::uint64_t noise_seed,
                        std::vector<double>& sums, std::vector<double>* sum_squares,
                        std::atomic<std::int64_t>* samples_done) {
  const Model& m = *p.model;
  at::set_num_threads(s.threads);  // per thread: this may run on a TBB worker
  const std::int64_t batch_size = p.certifier->plan().batch;
  const ImageShape shape = p.data->shape();
  const std::int64_t pixels = shape.channels * shape.height * shape.width;
  const std::int64_t dim = m.dim;
  const auto rows = static_cast<std::int64_t>(images.size());
  sums.assign(static_cast<std::size_t>(rows * dim), 0.0);
  const std::int64_t packed = packed_size(dim);
  if (sum_squares) sum_squares->assign(static_cast<std::size_t>(rows * packed), 0.0);
  std::vector<double> unit(static_cast<std::size_t>(dim));
  // On a GPU the noisy batch is copied from pinned host memory, asynchronously; the
  // buffer is refilled only after the embeddings came back, which waits for that copy.
  const at::Tensor host = at::empty({batch_size * pixels}, at::TensorOptions().dtype(at::kFloat).pinned_memory(s.device.is_cuda()));
  float* const buffer = host.data_ptr<float>();
  std::vector<std::int64_t> row_query(static_cast<std::size_t>(batch_size)), row_sample(static_cast<std::size_t>(batch_size));
  std::int64_t query = 0, sample = 0;
  while (query < rows) {
    std::int64_t filled = 0;
    for (; filled < batch_size && query < rows; ++filled) {
      row_query[static_cast<std::size_t>(filled)] = query;
      row_sample[static_cast<std::size_t>(filled)] = sample;
      if (++sample == n) {
        sample = 0;
        ++query;
      }
    }
    // ATen's own thread pool (OpenMP), the one the forward pass uses.
    at::parallel_for(0, filled, 8, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const auto local = static_cast<std::size_t>(row_query[static_cast<std::size_t>(i)]);
        float* out = buffer + i * pixels;
        p.noise->sample(noise_seed, noise_ids[local], row_sample[static_cast<std::size_t>(i)], 1, pixels, out);
        const float* clean = images[local];
        for (std::int64_t j = 0; j < pixels; ++j) out[j] += clean[j];
      }
    });
    at::Tensor embedding;
    {
      c10::InferenceMode inference;
      auto batch = host.slice(0, 0, filled * pixels).view({filled, shape.channels, shape.height, shape.width});
      embedding = m.backbone->forward(batch.to(s.device, /*non_blocking=*/true)).to(torch::kCPU).contiguous();
    }
    const std::string who = fmt::format("backbone plugin '{}'", p.spec->backbone.plugin);
    check_embedding_shape(embedding, filled, dim, who);
    const float* e = embedding.data_ptr<float>();
    for (std::int64_t i = 0; i < filled; ++i) {
      const float* row = e + i * dim;
      double norm2 = 0;
      for (std::int64_t d = 0; d < dim; ++d) norm2 += static_cast<double>(row[d]) * row[d];
      if (!(norm2 > 0) || !std::isfinite(norm2))
        check_embedding_rows(row, 1, dim, who, [&](std::int64_t) {
          const auto at = static_cast<std::size_t>(i);
          return fmt::format("noisy sample {} of query {}", row_sample[at],
                             noise_ids[static_cast<std::size_t>(row_query[at])]);
        });
      // f maps to the unit sphere (product.md section 2); renormalising in double keeps
      // ||f|| <= 1, which the McDiarmid bound needs, exact beyond float rounding.
      const double inv = 1.0 / std::sqrt(norm2);
      const std::int64_t q = row_query[static_cast<std::size_t>(i)];
      double* sum = sums.data() + q * dim;
      for (std::int64_t d = 0; d < dim; ++d) sum[d] += row[d] * inv;
      if (!sum_squares) continue;
      for (std::int64_t d = 0; d < dim; ++d) unit[static_cast<std::size_t>(d)] = row[d] * inv;
      double* square = sum_squares->data() + q * packed;
      for (std::int64_t a = 0; a < dim; ++a) {
        const double u = unit[static_cast<std::size_t>(a)];
        for (std::int64_t b = a; b < dim; ++b) *square++ += u * unit[static_cast<std::size_t>(b)];
      }
    }
    if (samples_done) *samples_done += filled;
  }
}

}  // namespace rguard::run
