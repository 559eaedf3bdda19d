// Images and labels as they cross plugin boundaries, in batches (faiss style).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace rguard {

struct ImageShape {
  std::int64_t channels = 0, height = 0, width = 0;
};

// images: [N, C, H, W] pixels in [0, 1] (noise is added in this space, before any
// normalisation, which lives inside the backbone), either float32, or uint8 where k
// stands for k/255 (what image files hold: a quarter of the memory; the core converts
// rows as it needs them, rguard::as_pixels); labels: int64 [N].
struct ImageSet {
  at::Tensor images;
  at::Tensor labels;
  std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// What a dataset plugin delivers. For leave-one-out, query and gallery are the same
// tensors and query_gallery_index[i] is i; otherwise -1 (the query is not in the gallery).
struct RetrievalData {
  ImageSet train;
  ImageSet query;
  ImageSet gallery;
  at::Tensor query_gallery_index;  // int64 [Q]
  std::string description;         // one line for the log, e.g. "train 30000, query 5000"
};

}  // namespace rguard
