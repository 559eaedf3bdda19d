// The sampler: noisy copies of query images through the backbone, in forward batches that
// may pack several queries, each query's unit embeddings fed in sample order to the
// statistics its certifier declared (rguard/statistics.hpp). It knows no bound.
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <torch/types.h>

#include <cmath>

#include "rguard/tensors.hpp"
#include "pipeline/run_session.hpp"

namespace rguard::run {

void stream_samples(const Session& s, const Point& p, const std::vector<const float*>& images,
                    const std::vector<std::int64_t>& noise_ids, std::int64_t from, std::int64_t to,
                    std::uint64_t noise_seed, const std::vector<Statistics>& parts, double* states,
                    std::atomic<std::int64_t>* samples_done, bool one_image_per_pass) {
  const Model& m = *p.model;
  at::set_num_threads(s.threads);  // per thread: this may run on a TBB worker
  const std::int64_t batch_size = p.certifier->plan().batch;
  const ImageShape shape = p.data->shape();
  const std::int64_t pixels = shape.channels * shape.height * shape.width;
  const std::int64_t dim = m.dim;
  const auto rows = static_cast<std::int64_t>(images.size());
  if (rows == 0 || to <= from) return;
  const std::int64_t size = state_size(parts.front());
  for (std::int64_t q = 0; q < rows && from == 0; ++q) {
    double* state = states + q * size;
    for (const auto& part : parts[static_cast<std::size_t>(q)]) {
      part->init(state);
      state += part->size();
    }
  }
  // On a GPU the noisy batch is copied from pinned host memory, asynchronously; the
  // buffer is refilled only after the embeddings came back, which waits for that copy.
  const at::Tensor host = at::empty({batch_size * pixels}, at::TensorOptions().dtype(at::kFloat).pinned_memory(s.device.is_cuda()));
  float* const buffer = host.data_ptr<float>();
  std::vector<std::int64_t> row_query(static_cast<std::size_t>(batch_size)), row_sample(static_cast<std::size_t>(batch_size));
  std::vector<double> unit(static_cast<std::size_t>(batch_size * dim));
  const std::string who = fmt::format("backbone plugin '{}'", p.spec->backbone.plugin);
  std::int64_t query = 0, sample = from;
  while (query < rows) {
    std::int64_t filled = 0;
    for (; filled < batch_size && query < rows; ++filled) {
      if (one_image_per_pass && filled > 0 && sample == from) break;
      row_query[static_cast<std::size_t>(filled)] = query;
      row_sample[static_cast<std::size_t>(filled)] = sample;
      if (++sample == to) {
        sample = from;
        ++query;
      }
    }
    // ATen's own thread pool (OpenMP), the one the forward pass uses.
    at::parallel_for(0, filled, 8, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const auto local = static_cast<std::size_t>(row_query[static_cast<std::size_t>(i)]);
        float* out = buffer + i * pixels;
        p.noise->sample(noise_seed, noise_ids[local], row_sample[static_cast<std::size_t>(i)], 1, pixels, out);
        const float* clean = images[local];
        for (std::int64_t j = 0; j < pixels; ++j) out[j] += clean[j];
      }
    });
    at::Tensor embedding;
    {
      c10::InferenceMode inference;
      auto batch = host.slice(0, 0, filled * pixels).view({filled, shape.channels, shape.height, shape.width});
      embedding = m.backbone->forward(batch.to(s.device, /*non_blocking=*/true)).to(torch::kCPU).contiguous();
    }
    check_embedding_shape(embedding, filled, dim, who);
    const float* e = embedding.data_ptr<float>();
    for (std::int64_t i = 0; i < filled; ++i) {
      const float* row = e + i * dim;
      double norm2 = 0;
      for (std::int64_t d = 0; d < dim; ++d) norm2 += static_cast<double>(row[d]) * row[d];
      if (!(norm2 > 0) || !std::isfinite(norm2))
        check_embedding_rows(row, 1, dim, who, [&](std::int64_t) {
          const auto at = static_cast<std::size_t>(i);
          return fmt::format("noisy sample {} of query {}", row_sample[at],
                             noise_ids[static_cast<std::size_t>(row_query[at])]);
        });
      // f maps to the unit sphere (product.md section 2); renormalising in double keeps
      // ||f|| <= 1, which the bounds need, exact beyond float rounding.
      const double inv = 1.0 / std::sqrt(norm2);
      for (std::int64_t d = 0; d < dim; ++d) unit[static_cast<std::size_t>(i * dim + d)] = row[d] * inv;
    }
    // Each query's run of rows in this batch goes to its parts, in sample order.
    for (std::int64_t begin = 0; begin < filled;) {
      const std::int64_t q = row_query[static_cast<std::size_t>(begin)];
      std::int64_t end = begin;
      while (end < filled && row_query[static_cast<std::size_t>(end)] == q) ++end;
      double* state = states + q * size;
      for (const auto& part : parts[static_cast<std::size_t>(q)]) {
        part->add(unit.data() + begin * dim, end - begin, state);
        state += part->size();
      }
      begin = end;
    }
    if (samples_done) *samples_done += filled;
  }
}

}  // namespace rguard::run
