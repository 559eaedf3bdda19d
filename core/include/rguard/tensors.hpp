// Tensor helpers for the core: input checks with clear messages, content fingerprints.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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

class Noise;

// Noise from the pipeline's noise plugin for a batch shaped like `like` ([B, C, H, W]): row
// r is sample samples[r] of the stream (seed, ids[r]), times `scale`; on like's device.
// Every noisy image rguard makes (certification, training, attacks) comes from the plugin,
// so a non-Gaussian noise plugin is never silently replaced by Gaussian noise.
at::Tensor noise_like(const Noise& noise, std::uint64_t seed, const at::Tensor& like, const std::vector<std::int64_t>& ids,
                      const std::vector<std::int64_t>& samples, double scale = 1.0);

// Adds dtype, shape and bytes of a (CPU-copied, contiguous) tensor to the hash.
void hash_tensor(Hasher& hasher, const at::Tensor& tensor);

// Fingerprint of everything a dataset delivered.
std::string fingerprint(const RetrievalData& data);

}  // namespace rguard
