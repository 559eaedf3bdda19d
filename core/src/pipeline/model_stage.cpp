// The model stage: each distinct backbone trained (resumably, a checkpoint per epoch) or
// restored from the cache, then the clean embeddings of the gallery and the queries.
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <tbb/flow_graph.h>
#include <torch/types.h>

#include <cstring>
#include <exception>
#include <iostream>
#include <mutex>
#include <optional>

#include "rguard/hash.hpp"
#include "pipeline/progress.hpp"
#include "pipeline/trained_stage.hpp"
#include "rguard/tensors.hpp"
#include "train/weights.hpp"
#include "pipeline/run_session.hpp"

namespace rguard::run {

void assign_models(Session& s) {
  for (auto& p : s.points) {
    const std::string key =
        with_context([&] { return plugin_failure(*p->spec, p->spec->backbone, "while fingerprinting its files"); },
                     [&] { return backbone_key(s, *p->spec, *p->backbone, *p->data); });
    // Points that share a backbone but put different denoisers in front of it share its training only.
    std::string slot_key = key;
    if (p->denoiser)
      slot_key += with_context(
          [&] { return plugin_failure(*p->spec, *p->spec->denoiser, "while fingerprinting its files"); },
          [&] { return "+" + p->spec->denoiser->canonical() + p->denoiser->fingerprint(); });
    auto& slot = s.models[slot_key];
    if (!slot) {
      slot = std::make_unique<Model>();
      slot->backbone = p->backbone;
      slot->base = p->backbone;
      slot->denoiser = p->denoiser;
      slot->noise = p->noise.get();
      slot->spec = p->spec;
      slot->data = p->data;
      slot->key = key;
      slot->forward = forward_identity(p->spec->backbone, p->backbone->fingerprint());
    }
    p->model = slot.get();
  }
}

namespace {

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
    restore_weights(*entry, *m.base);
    m.weights_hash = hash_weights(*m.base);
    if (entry->attribute_string("/", "weights_hash") != m.weights_hash)
      throw Error(fmt::format("{}: weights do not match their recorded hash", entry->path()));
    m.train_seconds = entry->attribute_double("/", "train_seconds");
    return true;
  } catch (const Error& e) {
    if (s.log) *s.log << "warning: " << e.what() << "; retraining\n";
    m.base->init(m.data->shape(), derive_seed(m.spec->seed, "backbone/init"));
    m.base->to(s.device);
    return false;
  }
}

void prepare_backbone(Session& s, Model& m) {
  const auto start = Clock::now();
  auto& backbone = *m.base;
  backbone.init(m.data->shape(), derive_seed(m.spec->seed, "backbone/init"));
  backbone.to(s.device);
  m.dim = backbone.embedding_dim();
  const bool forced = s.forced(kBackboneStage);
  if (!forced && try_restore_backbone(s, m)) {
    backbone.set_training(false);
    s.report({m.spec->point, "backbone", "reused", seconds_since(start), m.key, m.spec->backbone.plugin});
    return;
  }
  // Another run may be training it. (A lock that cannot be taken is the cache's failure, not the plugin's.)
  CacheLock lock = outside_plugin([&] { return s.cache.lock(kBackboneStage, m.key); });
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
  TrainedStage stage{
      .weights_stage = kBackboneStage,
      .checkpoint_stage = kCheckpointStage,
      .key = m.key,
      .progress_label = "train",
      .restart_warning = "training from the start",
      .epochs = config.epochs,
      .forced = forced,
      .state = [&] { return backbone.state(); },
      .init =
          [&] {
            backbone.init(m.data->shape(), derive_seed(m.spec->seed, "backbone/init"));
            backbone.to(s.device);
          },
      .run = [&](const TrainProgress& progress, const TrainCheckpoint* resume, const CheckpointSink& checkpoint) {
        train_backbone(backbone, m.data->data.train, config, *m.noise, derive_seed(m.spec->seed, "backbone/train"),
                       progress, resume, checkpoint);
      }};
  const TrainedWeights trained = train_and_publish(s, stage, m.train_seconds);
  backbone.set_training(false);
  m.weights_hash = trained.hash;
  const auto& resumed = trained.resumed_after;
  s.report({m.spec->point, "backbone", resumed ? "resumed" : "computed", seconds_since(start), m.key,
            resumed ? fmt::format("{}, training resumed after epoch {} of {}", m.spec->backbone.plugin, *resumed,
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
  CacheLock lock = outside_plugin([&] { return s.cache.lock(kEmbeddingStage, m.embedding_key); });
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

}  // namespace

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
        if (m->denoiser) prepare_denoiser(s, *m);
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

}  // namespace rguard::run
