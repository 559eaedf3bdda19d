// Backbone and denoiser weights in the cache: every parameter and buffer by name, and their hash.
#pragma once

#include <string>

#include "rguard/backbone.hpp"
#include "rguard/training.hpp"
#include "io/h5io.hpp"

namespace rguard {

// Any plugin's state() (a backbone's, a denoiser's): the tensors by name, live.
std::string hash_weights(const NamedTensors& state);
void store_weights(H5File& file, const NamedTensors& state);
// Copies stored tensors into the live ones; throws rguard::Error on any mismatch.
void restore_weights(const H5File& file, const NamedTensors& state);

// A training checkpoint entry: the weights, then the optimiser's and the generator's state,
// the epochs done, beta and the seconds trained so far. restore_checkpoint copies the
// weights into `state` and throws rguard::Error when the entry does not fit it.
void store_checkpoint(H5File& file, const NamedTensors& state, const TrainCheckpoint& checkpoint, double train_seconds);
TrainCheckpoint restore_checkpoint(const H5File& file, const NamedTensors& state, double& train_seconds);

inline std::string hash_weights(Backbone& backbone) { return hash_weights(backbone.state()); }
inline void store_weights(H5File& file, Backbone& backbone) { store_weights(file, backbone.state()); }
inline void restore_weights(const H5File& file, Backbone& backbone) { restore_weights(file, backbone.state()); }

}  // namespace rguard
