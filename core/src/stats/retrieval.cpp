#include "rguard/retrieval.hpp"

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace rguard {

namespace {

// The `kept` smallest (key, row) pairs of one row of keys, nearest first, ties to the lower
// row, `self` skipped: a bounded max-heap, so a row costs one comparison per gallery item
// once the heap is full (no sort of the whole row).
void select_nearest(const float* key, std::int64_t size, std::int64_t self, std::int64_t kept, std::int64_t* out) {
  using Item = std::pair<float, std::int64_t>;
  std::vector<Item> heap;
  heap.reserve(static_cast<std::size_t>(kept));
  for (std::int64_t j = 0; j < size; ++j) {
    if (j == self) continue;
    const Item item{key[j], j};
    if (static_cast<std::int64_t>(heap.size()) < kept) {
      heap.push_back(item);
      std::push_heap(heap.begin(), heap.end());
    } else if (item < heap.front()) {
      std::pop_heap(heap.begin(), heap.end());
      heap.back() = item;
      std::push_heap(heap.begin(), heap.end());
    }
  }
  std::sort_heap(heap.begin(), heap.end());
  for (std::size_t j = 0; j < heap.size(); ++j) out[j] = heap[j].second;
}

}  // namespace

std::vector<double> unit_rows(const float* rows, std::int64_t size, std::int64_t dim) {
  std::vector<double> out(static_cast<std::size_t>(size * dim));
  for (std::int64_t j = 0; j < size; ++j) {
    double n2 = 0;
    for (std::int64_t d = 0; d < dim; ++d) n2 += static_cast<double>(rows[j * dim + d]) * rows[j * dim + d];
    const double inv = n2 > 0 ? 1.0 / std::sqrt(n2) : 0.0;
    for (std::int64_t d = 0; d < dim; ++d) out[static_cast<std::size_t>(j * dim + d)] = rows[j * dim + d] * inv;
  }
  return out;
}

std::vector<std::int64_t> nearest_gallery_rows(const QueryView& queries, const GalleryView& gallery, std::int64_t k) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(queries.size * k), -1);
  if (queries.size == 0 || gallery.size == 0 || k == 0) return out;
  auto options = torch::TensorOptions().dtype(torch::kFloat);
  // from_blob does not copy; the views are only read.
  auto g = torch::from_blob(const_cast<float*>(gallery.embedding), {gallery.size, gallery.dim}, options);
  // Ranking key ||g||^2 - 2 <q, g>: ||q - g||^2 without the per-query constant ||q||^2.
  const auto g_norm2 = g.pow(2).sum(1).unsqueeze(0);
  const std::int64_t kept = std::min<std::int64_t>(k, gallery.size);
  // Memory stays bounded: one block of keys holds about 2^24 floats (64 MiB), whatever the
  // gallery size (SOP: 60k x 60k would be 14 GB at once).
  const std::int64_t block = std::clamp<std::int64_t>((std::int64_t{1} << 24) / gallery.size, 16, 4096);
  for (std::int64_t start = 0; start < queries.size; start += block) {
    const std::int64_t rows = std::min(block, queries.size - start);
    auto q = torch::from_blob(const_cast<float*>(queries.embedding + start * gallery.dim), {rows, gallery.dim}, options);
    const auto keys = at::addmm(g_norm2.expand({rows, gallery.size}), q, g.t(), /*beta=*/1, /*alpha=*/-2).contiguous();
    const float* key = keys.data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<std::int64_t> nearest(static_cast<std::size_t>(kept));
      for (std::int64_t i = begin; i < end; ++i) {
        const std::int64_t self = queries.gallery_index ? queries.gallery_index[start + i] : -1;
        std::fill(nearest.begin(), nearest.end(), -1);
        select_nearest(key + i * gallery.size, gallery.size, self, kept, nearest.data());
        std::copy(nearest.begin(), nearest.end(), out.begin() + (start + i) * k);
      }
    });
  }
  return out;
}

}  // namespace rguard
