// The denoiser stage: each model's denoiser trained in front of its frozen backbone
// (resumably, a checkpoint per epoch) or restored from the cache; then the model becomes
// base o denoiser for everything after it.
#include <fmt/format.h>
#include <torch/types.h>

#include <iostream>
#include <optional>

#include "pipeline/trained_stage.hpp"
#include "pipeline/run_session.hpp"
#include "rguard/hash.hpp"
#include "train/denoised_backbone.hpp"
#include "train/denoiser_training.hpp"
#include "train/weights.hpp"

namespace rguard::run {

namespace {

// "denoiser plugin 'torchscript' (file denoise.pt)": how messages name it.
std::string described(const StageSpec& stage) {
  std::string text = fmt::format("{} plugin '{}'", to_string(stage.kind), stage.plugin);
  if (stage.params.has("file")) text += fmt::format(" (file {})", stage.params.get_string("file"));
  return text;
}

void init_denoiser(Session& s, Model& m) {
  m.denoiser->init(m.data->shape(), derive_seed(m.spec->seed, "denoiser/init"));
  m.denoiser->to(s.device);
}

// The cached weights, or nothing (a damaged entry is a warning and retraining).
std::optional<std::string> try_restore(Session& s, Model& m) {
  auto entry = s.cache.open(kDenoiserStage, m.denoiser_key);
  if (!entry) return std::nullopt;
  try {
    restore_weights(*entry, m.denoiser->state());
    std::string hash = hash_weights(m.denoiser->state());
    if (entry->attribute_string("/", "weights_hash") != hash)
      throw Error(fmt::format("{}: weights do not match their recorded hash", entry->path()));
    m.denoiser_train_seconds = entry->attribute_double("/", "train_seconds");
    return hash;
  } catch (const Error& e) {
    if (s.log) *s.log << "warning: " << e.what() << "; retraining the denoiser\n";
    init_denoiser(s, m);
    return std::nullopt;
  }
}

// Trains (or resumes) the denoiser and publishes it; returns its weights' hash and what was done.
std::pair<std::string, std::string> train(Session& s, Model& m) {
  Denoiser& denoiser = *m.denoiser;
  const DenoiserTrainConfig& config = denoiser.train_config();
  if (config.epochs > 0 && m.data->data.train.size() == 0)
    throw Error(fmt::format("{}: denoiser.train.epochs is {} but the dataset has no train split; set it to 0",
                            m.spec->file, config.epochs));
  TrainedStage stage{
      .weights_stage = kDenoiserStage,
      .checkpoint_stage = kDenoiserCheckpointStage,
      .key = m.denoiser_key,
      .progress_label = "denoise",
      .restart_warning = "training the denoiser from the start",
      .epochs = config.epochs,
      .forced = s.forced(kDenoiserStage),
      .state = [&] { return denoiser.state(); },
      .init = [&] { init_denoiser(s, m); },
      .run = [&](const TrainProgress& progress, const TrainCheckpoint* resume, const CheckpointSink& checkpoint) {
        train_denoiser(denoiser, *m.base, m.data->data.train, config, *m.noise,
                       derive_seed(m.spec->seed, "denoiser/train"), progress, resume, checkpoint);
      }};
  TrainedWeights trained = train_and_publish(s, stage, m.denoiser_train_seconds);
  denoiser.set_training(false);
  const auto& resumed = trained.resumed_after;
  const std::string what =
      resumed ? fmt::format("{}, training resumed after epoch {} of {}", m.spec->denoiser->plugin, *resumed, config.epochs)
              : fmt::format("{}, {} epoch(s) in front of the frozen {}", m.spec->denoiser->plugin, config.epochs,
                            m.spec->backbone.plugin);
  return {std::move(trained.hash), what};
}

}  // namespace

void prepare_denoiser(Session& s, Model& m) {
  const auto start = Clock::now();
  const PipelineSpec& spec = *m.spec;
  const StageSpec& stage = *spec.denoiser;
  const std::string base_hash = m.weights_hash;
  const ImageShape shape = m.data->shape();
  with_context([&] { return plugin_failure(spec, stage, "while building its network"); }, [&] { init_denoiser(s, m); });
  m.denoiser_key = denoiser_key(s, spec, m, base_hash);
  with_context(
      [&] {
        return plugin_failure(spec, stage,
                              fmt::format("on a probe batch of {}x{}x{} images in front of backbone plugin '{}'",
                                          shape.channels, shape.height, shape.width, spec.backbone.plugin));
      },
      [&] {
        check_denoiser_fits(*m.denoiser, *m.base, shape, m.denoiser->train_config(), described(stage),
                            described(spec.backbone));
      });
  auto restored = s.forced(kDenoiserStage) ? std::nullopt : try_restore(s, m);
  std::string status = "reused", detail = stage.plugin;
  if (!restored) {
    // Another run may be training it.
    CacheLock lock = outside_plugin([&] { return s.cache.lock(kDenoiserStage, m.denoiser_key); });
    if (!s.forced(kDenoiserStage)) restored = try_restore(s, m);
    if (restored) {
      detail += " (trained by a concurrent run)";
    } else {
      auto [hash, what] = with_context(
          [&] { return plugin_failure(spec, stage, "while training in front of the frozen backbone"); },
          [&] { return train(s, m); });
      restored = hash;
      status = "computed";
      detail = what;
    }
  }
  m.denoiser->set_training(false);
  m.backbone = std::make_shared<DenoisedBackbone>(
      m.base, m.denoiser, fmt::format("{}: point '{}': {}", stage.location.str(), spec.point, described(stage)));
  m.backbone->set_training(false);
  m.weights_hash = denoised_weights_hash(base_hash, *restored);
  m.forward = denoised_forward(m.forward, stage, m.denoiser->fingerprint());
  s.report({spec.point, "denoiser", status, seconds_since(start), m.denoiser_key, detail});
}

}  // namespace rguard::run
