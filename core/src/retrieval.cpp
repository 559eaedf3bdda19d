#include "rguard/retrieval.hpp"

#include <torch/types.h>

#include <algorithm>

namespace rguard {

std::vector<std::int64_t> nearest_gallery_rows(const QueryView& queries, const GalleryView& gallery, std::int64_t k) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(queries.size * k), -1);
  if (queries.size == 0 || gallery.size == 0 || k == 0) return out;
  auto options = torch::TensorOptions().dtype(torch::kFloat);
  // from_blob does not copy; the views are only read.
  auto g = torch::from_blob(const_cast<float*>(gallery.embedding), {gallery.size, gallery.dim}, options);
  auto g_norm2 = g.pow(2).sum(1);
  const std::int64_t kept = std::min<std::int64_t>(k, gallery.size);
  constexpr std::int64_t kBlock = 512;  // bounds memory: kBlock x gallery.size floats
  for (std::int64_t start = 0; start < queries.size; start += kBlock) {
    const std::int64_t rows = std::min(kBlock, queries.size - start);
    auto q = torch::from_blob(const_cast<float*>(queries.embedding + start * gallery.dim), {rows, gallery.dim}, options);
    auto d2 = q.pow(2).sum(1, true) + g_norm2.unsqueeze(0) - 2.0 * q.matmul(g.t());
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t self = queries.gallery_index ? queries.gallery_index[start + i] : -1;
      if (self >= 0) d2[i][self] = std::numeric_limits<float>::infinity();
    }
    // Stable sort: equal distances keep the lower gallery row first.
    auto order = std::get<1>(d2.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false)).slice(1, 0, kept).contiguous();
    const auto* idx = order.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < kept; ++j) {
        const std::int64_t row = idx[i * kept + j];
        const std::int64_t self = queries.gallery_index ? queries.gallery_index[start + i] : -1;
        if (row != self) out[static_cast<std::size_t>((start + i) * k + j)] = row;
      }
  }
  return out;
}

}  // namespace rguard
