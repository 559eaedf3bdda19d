#include "rguard/tensors.hpp"

#include <fmt/format.h>
#include <torch/types.h>

#include <cmath>

#include "rguard/error.hpp"
#include "rguard/noise.hpp"

namespace rguard {

namespace {
void check_set(const ImageSet& set, const std::string& plugin, const char* name, bool may_be_empty) {
  auto fail = [&](const std::string& what) {
    throw Error(fmt::format("dataset plugin '{}': {}: {}", plugin, name, what));
  };
  if (!set.images.defined() || !set.labels.defined()) {
    if (may_be_empty) return;
    fail("missing images or labels");
  }
  const bool bytes = set.images.scalar_type() == torch::kByte;
  if (set.images.dim() != 4 || (!bytes && set.images.scalar_type() != torch::kFloat))
    fail(fmt::format("expected float32 or uint8 images [N, C, H, W], got {} {}", c10::toString(set.images.scalar_type()),
                     fmt::join(set.images.sizes(), "x")));
  if (set.labels.dim() != 1 || set.labels.scalar_type() != torch::kLong)
    fail(fmt::format("expected int64 labels [N], got {} {}", c10::toString(set.labels.scalar_type()),
                     fmt::join(set.labels.sizes(), "x")));
  if (set.images.size(0) != set.labels.size(0))
    fail(fmt::format("{} images but {} labels", set.images.size(0), set.labels.size(0)));
  if (set.images.size(0) == 0 && !may_be_empty) fail("is empty; check the dataset's class selection");
  if (set.images.numel() > 0 && !bytes) {  // uint8 pixels k/255 are in [0, 1] by construction
    const double lo = set.images.min().item<double>(), hi = set.images.max().item<double>();
    if (!(lo >= 0.0) || !(hi <= 1.0))  // NaN fails too
      fail(fmt::format("pixels must lie in [0, 1] (noise is added in that space), got [{}, {}]", lo, hi));
  }
}
}  // namespace

at::Tensor as_pixels(const at::Tensor& images) {
  if (images.scalar_type() != torch::kByte) return images;
  return images.to(torch::kFloat).div_(255.0f);  // k/255 correctly rounded, as a decoder writes it
}

void check_embedding_shape(const at::Tensor& embedding, std::int64_t rows, std::int64_t dim, const std::string& who) {
  if (embedding.dim() == 2 && embedding.size(0) == rows && embedding.size(1) == dim &&
      embedding.scalar_type() == torch::kFloat)
    return;
  throw Error(fmt::format("{}: forward returned {} [{}] for {} images, expected Float [{}, {}] "
                          "(its embedding_dim() says {})",
                          who, c10::toString(embedding.scalar_type()), fmt::join(embedding.sizes(), ", "), rows, rows,
                          dim, dim));
}

void check_embedding_rows(const float* rows, std::int64_t count, std::int64_t dim, const std::string& who,
                          const std::function<std::string(std::int64_t)>& describe_row) {
  for (std::int64_t i = 0; i < count; ++i) {
    double norm2 = 0;
    for (std::int64_t d = 0; d < dim; ++d) norm2 += static_cast<double>(rows[i * dim + d]) * rows[i * dim + d];
    if (norm2 > 0 && std::isfinite(norm2)) continue;
    throw Error(fmt::format("{} returned a {} embedding for {}; embeddings must be finite and "
                            "nonzero (diverged weights? an input it cannot handle?)",
                            who, std::isfinite(norm2) ? "zero" : "non-finite", describe_row(i)));
  }
}

void validate_retrieval_data(const RetrievalData& data, const std::string& plugin) {
  check_set(data.train, plugin, "train", true);
  check_set(data.query, plugin, "query", false);
  check_set(data.gallery, plugin, "gallery", false);
  if (data.query.images.sizes().slice(1) != data.gallery.images.sizes().slice(1))
    throw Error(fmt::format("dataset plugin '{}': query images {} and gallery images {} differ in shape", plugin,
                            fmt::join(data.query.images.sizes(), "x"), fmt::join(data.gallery.images.sizes(), "x")));
  const auto& index = data.query_gallery_index;
  if (!index.defined() || index.dim() != 1 || index.scalar_type() != torch::kLong ||
      index.size(0) != data.query.size())
    throw Error(fmt::format("dataset plugin '{}': query_gallery_index must be int64 [{}]", plugin, data.query.size()));
  if (index.numel() > 0 && (index.min().item<std::int64_t>() < -1 || index.max().item<std::int64_t>() >= data.gallery.size()))
    throw Error(fmt::format("dataset plugin '{}': query_gallery_index out of range [-1, {})", plugin, data.gallery.size()));
}

at::Tensor noise_like(const Noise& noise, std::uint64_t seed, const at::Tensor& like, const std::vector<std::int64_t>& ids,
                      const std::vector<std::int64_t>& samples, double scale) {
  const std::int64_t rows = like.size(0), per = like[0].numel();
  auto out = torch::empty({rows, per}, torch::kFloat);
  for (std::int64_t r = 0; r < rows; ++r)
    noise.sample(seed, ids[static_cast<std::size_t>(r)], samples[static_cast<std::size_t>(r)], 1, per, out[r].data_ptr<float>());
  if (scale != 1.0) out.mul_(scale);
  return out.view(like.sizes()).to(like.device());
}

void hash_tensor(Hasher& hasher, const at::Tensor& tensor) {
  if (!tensor.defined()) {
    hasher.text("undefined");
    return;
  }
  auto t = tensor.to(torch::kCPU).contiguous();
  hasher.text(c10::toString(t.scalar_type()));
  for (auto d : t.sizes()) hasher.u64(static_cast<std::uint64_t>(d));
  hasher.bytes(t.data_ptr(), t.numel() * t.element_size());
}

std::string fingerprint(const RetrievalData& data) {
  Hasher h;
  for (const ImageSet* set : {&data.train, &data.query, &data.gallery}) {
    hash_tensor(h, set->images);
    hash_tensor(h, set->labels);
  }
  hash_tensor(h, data.query_gallery_index);
  return h.hex();
}

}  // namespace rguard
