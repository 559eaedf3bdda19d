// Views of embeddings shared by certifiers and metrics (torch-free: raw row-major arrays).
#pragma once

#include <cstdint>
#include <vector>

namespace rguard {

struct GalleryView {
  const float* embedding = nullptr;      // [size x dim], unit l2 rows
  const std::int64_t* label = nullptr;   // [size]
  std::int64_t size = 0;
  std::int64_t dim = 0;
  const double* unit = nullptr;          // optional: unit_rows(embedding), computed once by the caller
};

// The rows renormalised to unit l2 length in double (a zero row stays zero): what the
// certificates assume the gallery is, exactly.
std::vector<double> unit_rows(const float* rows, std::int64_t size, std::int64_t dim);

struct QueryView {
  const float* embedding = nullptr;          // clean base embeddings [size x dim]
  const std::int64_t* label = nullptr;       // [size]
  const std::int64_t* gallery_index = nullptr;  // own gallery row or -1 (excluded from search)
  const std::int64_t* id = nullptr;          // row in the dataset's query set
  std::int64_t size = 0;
};

// The k nearest gallery rows (l2) of each query, nearest first, the query's own row
// excluded; ties broken by the lower index. Result [queries.size x k] (-1 where the
// gallery has fewer than k other rows). Computed in blocks, so memory stays bounded.
std::vector<std::int64_t> nearest_gallery_rows(const QueryView& queries, const GalleryView& gallery,
                                               std::int64_t k);

}  // namespace rguard
