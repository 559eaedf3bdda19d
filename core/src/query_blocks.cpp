// Query blocks: the unit of streaming, caching and resume. Each block's sums are stored
// under a key of the point's sample key and its query rows.
#include <fmt/format.h>
#include <torch/types.h>

#include "rguard/hash.hpp"
#include "rguard/tensors.hpp"
#include "run_session.hpp"

namespace rguard::run {

void plan_blocks(const Session& s, Point& p) {
  const SamplingPlan plan = p.certifier->plan();
  p.sample_key = sample_key(s, p);
  // At least 8 queries a block, and enough to fill a forward batch when n is small.
  const std::size_t per_block = static_cast<std::size_t>(std::max<std::int64_t>(8, (plan.batch + plan.n - 1) / plan.n));
  const auto& selected = p.queries;
  p.blocks.clear();
  for (std::size_t start = 0; start < selected.size(); start += per_block) {
    Block block;
    block.point = &p;
    const std::size_t end = std::min(selected.size(), start + per_block);
    block.rows.assign(selected.begin() + static_cast<std::ptrdiff_t>(start), selected.begin() + static_cast<std::ptrdiff_t>(end));
    Hasher h(Hasher().text(p.sample_key).digest());
    for (auto row : block.rows) h.u64(static_cast<std::uint64_t>(row));
    block.key = h.hex();
    p.blocks.push_back(std::move(block));
  }
}

bool load_block(const Session& s, Block& block) {
  auto entry = s.cache.open(kSampleStage, block.key);
  if (!entry) return false;
  const Point& p = *block.point;
  std::vector<std::uint64_t> shape;
  auto ids = entry->read<std::int64_t>("/query_id");
  auto sums = entry->read<double>("/sum", &shape);
  const auto rows = static_cast<std::uint64_t>(block.rows.size()), dim = static_cast<std::uint64_t>(p.model->dim);
  const bool ok = ids == block.rows && entry->attribute_int("/", "n") == p.certifier->plan().n &&
                  shape == std::vector<std::uint64_t>{rows, dim};
  if (!ok) return false;
  if (p.certifier->plan().second_moments) {
    if (!entry->exists("/sum_squares")) return false;
    auto squares = entry->read<double>("/sum_squares", &shape);
    if (shape != std::vector<std::uint64_t>{rows, static_cast<std::uint64_t>(packed_size(p.model->dim))}) return false;
    block.sum_squares = std::move(squares);
  }
  block.sums = std::move(sums);
  block.seconds = entry->attribute_double("/", "seconds");
  block.cached = true;
  return true;
}

void sample_block(Session& s, Block& block, std::atomic<std::int64_t>& samples_done) {
  const auto start = Clock::now();
  const Point& p = *block.point;
  const ImageShape shape = p.data->shape();
  const std::int64_t pixels = shape.channels * shape.height * shape.width;
  // This block's clean images as float pixels (the data set may hold uint8).
  const at::Tensor clean =
      as_pixels(p.data->data.query.images.index_select(0, torch::tensor(block.rows, torch::kLong))).contiguous();
  std::vector<const float*> rows;
  for (std::size_t i = 0; i < block.rows.size(); ++i) rows.push_back(clean.data_ptr<float>() + static_cast<std::int64_t>(i) * pixels);
  accumulate_samples(s, p, rows, block.rows, p.certifier->plan().n, derive_seed(p.spec->seed, "noise/certify"),
                     block.sums, p.certifier->plan().second_moments ? &block.sum_squares : nullptr, &samples_done);
  block.seconds = seconds_since(start);
}

void store_block(const Session& s, const Block& block) {
  const Point& p = *block.point;
  s.cache.publish(kSampleStage, block.key, [&](H5File& file) {
    file.write("/query_id", block.rows);
    const auto dim = static_cast<std::uint64_t>(p.model->dim);
    file.write("/sum", block.sums.data(), {block.rows.size(), dim});
    if (!block.sum_squares.empty())
      file.write("/sum_squares", block.sum_squares.data(),
                 {block.rows.size(), static_cast<std::uint64_t>(packed_size(p.model->dim))});
    file.set_attribute("/", "n", p.certifier->plan().n);
    file.set_attribute("/", "seconds", block.seconds);
  });
}

}  // namespace rguard::run
