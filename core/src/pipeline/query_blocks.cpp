// Query blocks: the unit of streaming, caching and resume. A block's statistics (what the
// certifier keeps of its queries' samples) are stored under a key of the point's sample key
// and its query rows.
#include <fmt/format.h>
#include <algorithm>
#include <torch/types.h>

#include "rguard/hash.hpp"
#include "rguard/tensors.hpp"
#include "pipeline/run_session.hpp"

namespace rguard::run {

void plan_blocks(const Session& s, Point& p) {
  const SamplingPlan plan = p.certifier->plan();
  const GalleryView gallery = p.model->gallery();
  p.statistics_id = with_context([&] { return plugin_failure(*p.spec, p.spec->certifier, "declaring its statistics"); },
                                 [&] { return p.certifier->statistics_id(gallery); });
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
  const SamplingPlan plan = p.certifier->plan();
  if (entry->read<std::int64_t>("/query_id") != block.rows || entry->attribute_int("/", "n") != plan.n ||
      entry->attribute_int("/", "selection") != plan.selection || entry->attribute_string("/", "statistics") != p.statistics_id)
    return false;
  std::vector<std::uint64_t> shape;
  auto state = entry->read<double>("/state", &shape);
  if (shape.size() != 2 || shape[0] != block.rows.size()) return false;
  std::vector<double> selection;
  if (plan.selection > 0) {
    selection = entry->read<double>("/selection", &shape);
    if (shape.size() != 2 || shape[0] != block.rows.size()) return false;
  }
  std::vector<std::int64_t> samples(block.rows.size(), plan.n);
  if (!plan.looks.empty()) {
    samples = entry->read<std::int64_t>("/samples", &shape);
    if (shape.size() != 1 || shape[0] != block.rows.size()) return false;
    for (const auto m : samples)  // each query stopped at a look
      if (!std::binary_search(plan.looks.begin(), plan.looks.end(), m)) return false;
  }
  block.state = std::move(state);
  block.selection = std::move(selection);
  block.samples = std::move(samples);
  block.seconds = entry->attribute_double("/", "seconds");
  block.cached = true;
  return true;
}

namespace {

// Parts must be what the certifier declared (statistics_id(): "<selection>;<main>"), since
// that is what the cache key names.
void check_declared(const Point& p, const std::vector<Statistics>& parts, bool selection) {
  const std::size_t split = p.statistics_id.find(';');
  const std::string declared = split == std::string::npos ? std::string()
                               : selection ? p.statistics_id.substr(0, split)
                                           : p.statistics_id.substr(split + 1);
  for (const auto& query : parts)
    if (statistics_id(query) != declared)
      throw Error(fmt::format("certifier plugin '{}' declared the statistics '{}' but built '{}' for a query; its "
                              "statistics_id() must describe what it keeps",
                              p.spec->certifier.plugin, declared, statistics_id(query)));
}

}  // namespace

void sample_block(Session& s, Block& block, std::atomic<std::int64_t>& samples_done) {
  const auto start = Clock::now();
  const Point& p = *block.point;
  const SamplingPlan plan = p.certifier->plan();
  const GalleryView gallery = p.model->gallery();
  const ImageShape shape = p.data->shape();
  const std::int64_t pixels = shape.channels * shape.height * shape.width;
  const std::size_t count = block.rows.size();
  // This block's clean images as float pixels (the data set may hold uint8).
  const at::Tensor clean =
      as_pixels(p.data->data.query.images.index_select(0, torch::tensor(block.rows, torch::kLong))).contiguous();
  std::vector<const float*> rows;
  for (std::size_t i = 0; i < count; ++i) rows.push_back(clean.data_ptr<float>() + static_cast<std::int64_t>(i) * pixels);
  auto certifier = [&](const char* doing, auto&& call) {
    return with_context([&] { return plugin_failure(*p.spec, p.spec->certifier, doing); }, call);
  };
  auto backbone = [&](auto&& call) {
    with_context(
        [&] {
          return plugin_failure(*p.spec, p.spec->backbone,
                                fmt::format("while sampling (noise plugin '{}')", p.spec->noise.plugin));
        },
        call);
  };
  auto info = [&](std::size_t i) {
    const auto id = static_cast<std::size_t>(block.rows[i]);
    return QueryInfo{block.rows[i], p.data->query_label[id], p.data->query_gallery_index[id]};
  };
  // Selection: its own noise stream, so the main samples are independent of what it chose.
  const double* selection = nullptr;
  std::int64_t selection_size = 0;
  if (plan.selection > 0) {
    const Statistics parts = certifier("declaring its selection statistics", [&] { return p.certifier->selection_statistics(gallery); });
    check_declared(p, {parts}, true);
    selection_size = state_size(parts);
    block.selection.assign(count * static_cast<std::size_t>(selection_size), 0.0);
    backbone([&] {
      stream_samples(s, p, rows, block.rows, 0, plan.selection, derive_seed(p.spec->seed, "noise/select"),
                     std::vector<Statistics>(count, parts), block.selection.data(), &samples_done);
    });
    selection = block.selection.data();
  }
  std::vector<Statistics> parts(count);
  for (std::size_t i = 0; i < count; ++i)
    parts[i] = certifier("setting up its statistics", [&] {
      return p.certifier->statistics(info(i), gallery, selection ? selection + static_cast<std::int64_t>(i) * selection_size : nullptr);
    });
  check_declared(p, parts, false);
  const auto size = static_cast<std::size_t>(state_size(parts.front()));
  block.state.assign(count * size, 0.0);
  const std::uint64_t noise_seed = derive_seed(p.spec->seed, "noise/certify");
  if (plan.looks.empty()) {
    backbone([&] { stream_samples(s, p, rows, block.rows, 0, plan.n, noise_seed, parts, block.state.data(), &samples_done); });
    block.samples.assign(count, plan.n);
    block.seconds = seconds_since(start);
    return;
  }
  // Sequential: the queries still drawing go on from one look to the next together (their
  // states gathered into one buffer and scattered back); after each look but the last, the
  // certifier says which of them draw on (Theorem S, docs/certificates.md).
  block.samples.assign(count, 0);
  std::vector<std::size_t> active(count);
  for (std::size_t i = 0; i < count; ++i) active[i] = i;
  std::int64_t from = 0;
  for (std::size_t look = 0; look < plan.looks.size() && !active.empty(); ++look) {
    const std::int64_t to = plan.looks[look];
    std::vector<const float*> images;
    std::vector<std::int64_t> ids;
    std::vector<Statistics> active_parts;
    std::vector<double> states(active.size() * size);
    for (std::size_t a = 0; a < active.size(); ++a) {
      images.push_back(rows[active[a]]);
      ids.push_back(block.rows[active[a]]);
      active_parts.push_back(parts[active[a]]);
      std::copy_n(block.state.data() + active[a] * size, size, states.data() + a * size);
    }
    backbone([&] { stream_samples(s, p, images, ids, from, to, noise_seed, active_parts, states.data(), &samples_done); });
    std::vector<std::size_t> going_on;
    for (std::size_t a = 0; a < active.size(); ++a) {
      const std::size_t i = active[a];
      std::copy_n(states.data() + a * size, size, block.state.data() + i * size);
      block.samples[i] = to;
      const QueryState state{plan.selection, to, selection ? selection + static_cast<std::int64_t>(i) * selection_size : nullptr,
                             block.state.data() + i * size};
      if (look + 1 < plan.looks.size() &&
          certifier("deciding whether a query draws on", [&] { return p.certifier->need_more(info(i), gallery, state, p.noise->sigma()); }))
        going_on.push_back(i);
    }
    active = std::move(going_on);
    from = to;
  }
  block.seconds = seconds_since(start);
}

void store_block(const Session& s, const Block& block) {
  const Point& p = *block.point;
  const auto rows = static_cast<std::uint64_t>(block.rows.size());
  s.cache.publish(kSampleStage, block.key, [&](H5File& file) {
    file.write("/query_id", block.rows);
    file.write("/state", block.state.data(), {rows, block.state.size() / rows});
    if (!block.selection.empty()) file.write("/selection", block.selection.data(), {rows, block.selection.size() / rows});
    if (!p.certifier->plan().looks.empty()) file.write("/samples", block.samples);
    file.set_attribute("/", "n", p.certifier->plan().n);
    file.set_attribute("/", "selection", p.certifier->plan().selection);
    file.set_attribute("/", "statistics", p.statistics_id);
    file.set_attribute("/", "seconds", block.seconds);
  });
}

}  // namespace rguard::run
