// Tensor helpers for the core: input checks with clear messages, content fingerprints.
#pragma once

#include <string>

#include "rguard/data.hpp"
#include "rguard/hash.hpp"

namespace rguard {

// Checks shapes, types and value ranges of what a dataset plugin returned; throws
// rguard::Error naming the plugin, the field, what was expected and what was got.
void validate_retrieval_data(const RetrievalData& data, const std::string& plugin);

// Adds dtype, shape and bytes of a (CPU-copied, contiguous) tensor to the hash.
void hash_tensor(Hasher& hasher, const at::Tensor& tensor);

// Fingerprint of everything a dataset delivered.
std::string fingerprint(const RetrievalData& data);

}  // namespace rguard
