// Training a denoiser D in front of a frozen backbone f (docs/denoised-smoothing.md): batches
// drawn uniformly from the train split, `draws` noisy copies of each image from the noise
// plugin at train.noise_sigma, the weighted objectives on D's output and on f(D(.)); Adam,
// a checkpoint per epoch. The backbone's parameters get no gradient and no optimiser: its
// weights hash the same before and after (checked; an Error otherwise). Internal to rguard_core.
#pragma once

#include <cstdint>

#include "rguard/denoiser.hpp"
#include "rguard/training.hpp"

namespace rguard {

class Noise;
struct ImageSet;

// Trains for config.epochs, or for those `resume` has not done (the denoiser then holds the
// checkpoint's weights); `checkpoint` after every epoch (its beta is unused). Noise keyed by
// (step, row, draw) from `seed`: a resumed run gives the weights of an uninterrupted one.
void train_denoiser(Denoiser& denoiser, Backbone& base, const ImageSet& train, const DenoiserTrainConfig& config,
                    const Noise& noise, std::uint64_t seed, const TrainProgress& progress,
                    const TrainCheckpoint* resume = nullptr, const CheckpointSink& checkpoint = {});

// Throws rguard::Error, naming `who` and the shapes, unless the denoiser maps a batch of
// `input` images to the same shape and f accepts that; and, when the objectives need
// gradients through f (stability, certified_margin), unless f's output records them.
void check_denoiser_fits(Denoiser& denoiser, Backbone& base, const ImageShape& input, const DenoiserTrainConfig& config,
                         const std::string& who, const std::string& base_who);

}  // namespace rguard
