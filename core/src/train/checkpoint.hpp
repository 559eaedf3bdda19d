// A training loop's state between epochs beside the weights: the optimiser's (Adam moments
// and steps) and the generator's that draws batches. Shared by backbone and denoiser
// training, so that both resume to the weights of an uninterrupted run. Internal to rguard_core.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>

#include "rguard/training.hpp"

namespace torch::optim {
class Optimizer;
}

namespace rguard {

TrainCheckpoint capture_checkpoint(std::int64_t epochs_done, double beta, torch::optim::Optimizer& optimiser,
                                   const at::Generator& generator);
// Loads the optimiser's and the generator's state (epochs_done and beta are the caller's).
void resume_checkpoint(const TrainCheckpoint& checkpoint, torch::optim::Optimizer& optimiser, at::Generator& generator);

}  // namespace rguard
