#include "pipeline/trained_stage.hpp"

#include <fmt/format.h>

#include <iostream>

#include "pipeline/progress.hpp"
#include "train/weights.hpp"

namespace rguard::run {

TrainedWeights train_and_publish(Session& s, const TrainedStage& stage, double& train_seconds) {
  // A run killed while training resumes from its last finished epoch.
  std::optional<TrainCheckpoint> resume;
  double seconds_before = 0;
  if (!stage.forced && stage.epochs > 0)
    if (auto entry = s.cache.open(stage.checkpoint_stage, stage.key)) {
      try {
        TrainCheckpoint c = restore_checkpoint(*entry, stage.state(), seconds_before);
        if (c.epochs_done < stage.epochs) resume = std::move(c);
      } catch (const Error& e) {
        if (s.log) *s.log << "warning: " << e.what() << "; " << stage.restart_warning << "\n";
      }
      if (!resume) stage.init();  // restoring may have written part of a damaged entry's weights
    }
  if (!resume) seconds_before = 0;
  const auto training = Clock::now();
  Progress progress(s.log ? *s.log : std::cerr, stage.progress_label, "images", 1, s.log != nullptr);
  stage.run(
      [&](std::int64_t done, std::int64_t total, double loss) {
        progress.set_total(total);
        progress.update(done, fmt::format("loss {:.4f}", loss));
      },
      resume ? &*resume : nullptr,
      [&](const TrainCheckpoint& c) {
        outside_plugin([&] {
          s.cache.publish(stage.checkpoint_stage, stage.key, [&](H5File& file) {
            store_checkpoint(file, stage.state(), c, seconds_before + seconds_since(training));
          });
        });
      });
  progress.finish();
  train_seconds = seconds_before + seconds_since(training);
  TrainedWeights out{hash_weights(stage.state()), std::nullopt};
  if (resume) out.resumed_after = resume->epochs_done;
  outside_plugin([&] {
    s.cache.publish(stage.weights_stage, stage.key, [&](H5File& file) {
      store_weights(file, stage.state());
      file.set_attribute("/", "weights_hash", out.hash);
      file.set_attribute("/", "train_seconds", train_seconds);
    });
  });
  return out;
}

}  // namespace rguard::run
