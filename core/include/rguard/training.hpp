// Metric-learning training of a backbone (shared by every trainable backbone plugin):
// margin loss with distance-weighted sampling (Wu et al. 2017, the RetrievalGuard setup)
// on noisy images, and objectives for the smoothed embedding: consistency, certified
// margin, adversarial training of the smoothed model (docs/training.md). Training noise is
// the pipeline's noise plugin scaled to train.noise_sigma.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "rguard/params.hpp"

namespace rguard {

class Backbone;
class Noise;
struct ImageSet;

// What the smoothed-embedding objectives add to the margin loss (docs/training.md).
enum class TrainObjective { Noise, Consistency, CertifiedMargin, SmoothAdv };

struct TrainConfig {
  std::int64_t epochs = 0;
  std::int64_t batch = 0;
  std::int64_t per_class = 0;  // images per class in a batch
  double lr = 0;
  double noise_sigma = 0;  // Gaussian augmentation in pixel space; 0 = none
  double margin = 0;       // gamma
  double beta0 = 0;        // initial boundary beta
  double beta_lr = 0;
  double weight_decay = 0;
  std::vector<std::int64_t> lr_milestones;  // epochs after which lr *= lr_gamma
  double lr_gamma = 1;
  bool augment = false;  // random resized crop and flip of each training image
  TrainObjective objective = TrainObjective::Noise;
  std::int64_t draws = 1;   // noise draws per image (m)
  double weight = 0;        // lambda of consistency and certified margin
  double consistency_weight = 0;  // the consistency term added to certified margin or smooth_adv
  double target = 0;        // certified margin: the pair radius over sigma it asks for
  std::int64_t hard = 0;    // certified margin: negatives per anchor
  double adv_eps = 0;       // smooth_adv: l2 budget
  std::int64_t adv_steps = 0;
  double adv_fraction = 0;  // smooth_adv: share of each batch attacked
};

// The "train.*" parameters every trainable backbone appends to its schema.
std::vector<ParamSpec> train_param_specs(const char* default_epochs = "2");
TrainConfig parse_train_config(const Params& params);

// Called after every optimiser step with (images seen, images total, last loss).
using TrainProgress = std::function<void(std::int64_t, std::int64_t, double)>;

// Per image: a random crop of 8-100% of the area with aspect ratio in [3/4, 4/3], resized
// back to the image's size, flipped horizontally with probability 1/2 (the usual training
// transform of deep metric learning), drawn from `generator`. Pixels stay in [0, 1].
at::Tensor random_resized_crop_flip(const at::Tensor& images, at::Generator& generator);

// What training needs to continue exactly where it stopped, beside the backbone's own
// weights: epochs done, the optimiser's state (Adam moments and steps), beta, and the
// state of the generator that draws batches, noise and augmentations.
struct TrainCheckpoint {
  std::int64_t epochs_done = 0;
  std::string optimiser;                // torch::serialize archive
  std::vector<std::uint8_t> generator;  // CPU generator state
  double beta = 0;
};
using CheckpointSink = std::function<void(const TrainCheckpoint&)>;

// Trains for config.epochs, or for the epochs `resume` has not done yet (the backbone
// then already holds the checkpoint's weights); calls `checkpoint` after every epoch.
// Training noise is `noise`'s (its samples scaled by train.noise_sigma / its sigma), keyed
// by (step, row, draw) from `seed`, so resuming gives the same weights as an uninterrupted
// run.
void train_backbone(Backbone& backbone, const ImageSet& train, const TrainConfig& config, const Noise& noise,
                    std::uint64_t seed, const TrainProgress& progress, const TrainCheckpoint* resume = nullptr,
                    const CheckpointSink& checkpoint = {});

}  // namespace rguard
