// Backbone weights in the cache: every parameter and buffer by name, and their hash.
#pragma once

#include <string>

#include "rguard/backbone.hpp"
#include "io/h5io.hpp"

namespace rguard {

std::string hash_weights(Backbone& backbone);
void store_weights(H5File& file, Backbone& backbone);
// Copies stored tensors into the live ones; throws rguard::Error on any mismatch.
void restore_weights(const H5File& file, Backbone& backbone);

}  // namespace rguard
