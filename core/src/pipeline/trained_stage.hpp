// Training a model stage resumably (the backbone, the denoiser): resume from the stage's
// checkpoint entry when it holds fewer epochs than asked, run the loop with a progress bar
// and a checkpoint published after every epoch, then publish the weights with their hash and
// the seconds trained (those before a resume included). Internal to rguard_core.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "pipeline/run_session.hpp"
#include "rguard/training.hpp"

namespace rguard::run {

struct TrainedStage {
  const char* weights_stage;     // cache stage of the trained weights
  const char* checkpoint_stage;  // cache stage of the checkpoints, under the same key
  std::string key;
  const char* progress_label;   // the progress bar's ("train", "denoise")
  const char* restart_warning;  // what a damaged checkpoint's warning says happens instead
  std::int64_t epochs;
  bool forced;                   // --force: never resume
  std::function<NamedTensors()> state;
  std::function<void()> init;  // a fresh start: the plugin's init, on the session's device
  // The training loop from `resume` (null: the start), reporting through the callbacks.
  std::function<void(const TrainProgress&, const TrainCheckpoint* resume, const CheckpointSink&)> run;
};

struct TrainedWeights {
  std::string hash;
  std::optional<std::int64_t> resumed_after;  // the checkpoint's epochs, when resumed
};

// `train_seconds`: set to the seconds trained in all, a resumed checkpoint's included.
TrainedWeights train_and_publish(Session& s, const TrainedStage& stage, double& train_seconds);

}  // namespace rguard::run
