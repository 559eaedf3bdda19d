// Metric-learning training of a backbone (shared by every trainable backbone plugin):
// margin loss with distance-weighted sampling (Wu et al. 2017, the RetrievalGuard setup)
// and Gaussian noise augmentation at the training sigma.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rguard/params.hpp"

namespace rguard {

class Backbone;
struct ImageSet;

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
};

// The "train.*" parameters every trainable backbone appends to its schema.
std::vector<ParamSpec> train_param_specs(const char* default_epochs = "2");
TrainConfig parse_train_config(const Params& params);

// Called after every optimiser step with (images seen, images total, last loss).
using TrainProgress = std::function<void(std::int64_t, std::int64_t, double)>;

void train_backbone(Backbone& backbone, const ImageSet& train, const TrainConfig& config,
                    std::uint64_t seed, const TrainProgress& progress);

}  // namespace rguard
