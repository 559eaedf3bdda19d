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
  const auto rows = static_cast<std::uint64_t>(block.rows.size());
  if (entry->read<std::int64_t>("/query_id") != block.rows || entry->attribute_int("/", "n") != plan.n ||
      entry->attribute_int("/", "selection") != plan.selection || entry->attribute_string("/", "statistics") != p.statistics_id)
    return false;
  std::vector<std::uint64_t> shape;
  std::vector<double> selection;
  if (plan.selection > 0) {
    selection = entry->read<double>("/selection", &shape);
    if (shape.size() != 2 || shape[0] != rows) return false;
  }
  const double seconds = entry->attribute_double("/", "seconds");
  if (plan.looks.empty()) {
    auto state = entry->read<double>("/state", &shape);
    if (shape.size() != 2 || shape[0] != rows) return false;
    block.state = std::move(state);
    block.selection = std::move(selection);
    block.samples.assign(block.rows.size(), plan.n);
    block.seconds = seconds;
    block.cached = true;
    return true;
  }
  // Sequential: each query's states at the looks it reached; the stopping rule replayed on
  // them decides what this run uses, or that some query must draw on (sample_block then
  // continues from here).
  auto reached = entry->read<std::int64_t>("/samples", &shape);
  if (shape.size() != 1 || shape[0] != rows) return false;
  for (const auto m : reached)
    if (!std::binary_search(plan.looks.begin(), plan.looks.end(), m)) return false;
  auto look_states = entry->read<double>("/look_state", &shape);
  if (shape.size() != 3 || shape[0] != rows || shape[1] != plan.looks.size()) return false;
  block.selection = std::move(selection);
  block.reached = std::move(reached);
  block.look_states = std::move(look_states);
  block.stored_seconds = seconds;
  block.cached = follow_looks(p, block, nullptr);
  return block.cached;
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
  const bool continued = !block.reached.empty();  // a sequential block's cached prefix goes on
  if (plan.selection > 0 && continued) {
    selection_size = static_cast<std::int64_t>(block.selection.size() / count);
    selection = block.selection.data();
  } else if (plan.selection > 0) {
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
    block.drawn_now = static_cast<std::int64_t>(count) * plan.n;
    block.seconds = seconds_since(start);
    return;
  }
  // Sequential: from look to look, the queries still drawing together (follow_looks).
  const std::size_t looks = plan.looks.size();
  if (continued && block.look_states.size() != count * looks * size)
    throw Error(fmt::format("{}: holds {} doubles of state per query and look, but the certifier declares {}; the entry "
                            "does not match its key: move it aside and run again",
                            s.cache.path(kSampleStage, block.key), block.look_states.size() / (count * looks), size));
  if (!continued) {
    block.look_states.assign(count * looks * size, 0.0);
    block.reached.assign(count, 0);
    block.stored_seconds = 0;
  }
  const DrawOn draw_on = [&](const std::vector<std::size_t>& queries, std::int64_t from, std::int64_t to, double* states) {
    std::vector<const float*> images;
    std::vector<std::int64_t> ids;
    std::vector<Statistics> drawing;
    for (const auto i : queries) {
      images.push_back(rows[i]);
      ids.push_back(block.rows[i]);
      drawing.push_back(parts[i]);
    }
    backbone([&] { stream_samples(s, p, images, ids, from, to, noise_seed, drawing, states, &samples_done, true); });
  };
  block.drawn_now = 0;
  block.extended = continued;
  const double before = block.stored_seconds;
  const auto drawing = Clock::now();
  follow_looks(p, block, &draw_on);
  // The selection (when drawn here) and the new rounds join the time of what was cached.
  block.stored_seconds = before + seconds_since(continued ? drawing : start);
  share_seconds(plan, block);
}

void store_block(const Session& s, const Block& block) {
  const Point& p = *block.point;
  const SamplingPlan plan = p.certifier->plan();
  const auto rows = static_cast<std::uint64_t>(block.rows.size());
  s.cache.publish(kSampleStage, block.key, [&](H5File& file) {
    file.write("/query_id", block.rows);
    if (!block.selection.empty()) file.write("/selection", block.selection.data(), {rows, block.selection.size() / rows});
    if (plan.looks.empty()) {
      file.write("/state", block.state.data(), {rows, block.state.size() / rows});
    } else {  // every look each query reached (sequential_blocks.cpp)
      const auto looks = static_cast<std::uint64_t>(plan.looks.size());
      file.write("/samples", block.reached);
      file.write("/look_state", block.look_states.data(), {rows, looks, block.look_states.size() / (rows * looks)});
    }
    file.set_attribute("/", "n", plan.n);
    file.set_attribute("/", "selection", plan.selection);
    file.set_attribute("/", "statistics", p.statistics_id);
    file.set_attribute("/", "seconds", plan.looks.empty() ? block.seconds : block.stored_seconds);
  });
}

}  // namespace rguard::run
