// Tensor helpers for the core: input checks with clear messages, content fingerprints.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "rguard/data.hpp"
#include "rguard/hash.hpp"

namespace rguard {

// Pixels in [0, 1] as float32: uint8 images (k stands for k/255) converted, float ones
// as they are. Apply it to the rows needed, not a whole data set.
at::Tensor as_pixels(const at::Tensor& images);

// Checks shapes, types and value ranges of what a dataset plugin returned; throws
// rguard::Error naming the plugin, the field, what was expected and what was got.
void validate_retrieval_data(const RetrievalData& data, const std::string& plugin);

// Checks a backbone's output for `rows` images: float [rows, dim]. Throws rguard::Error
// naming the backbone (`who`: "backbone plugin 'x'"), what was expected and what was got.
void check_embedding_shape(const at::Tensor& embedding, std::int64_t rows, std::int64_t dim, const std::string& who);

// Checks `count` embeddings of `dim` floats: each finite with a nonzero norm (the
// certificates divide by it). Throws rguard::Error naming the backbone and the row, as
// describe_row(i) puts it ("clean image 12").
void check_embedding_rows(const float* rows, std::int64_t count, std::int64_t dim, const std::string& who,
                          const std::function<std::string(std::int64_t)>& describe_row);

// Adds dtype, shape and bytes of a (CPU-copied, contiguous) tensor to the hash.
void hash_tensor(Hasher& hasher, const at::Tensor& tensor);

// Fingerprint of everything a dataset delivered.
std::string fingerprint(const RetrievalData& data);

}  // namespace rguard
