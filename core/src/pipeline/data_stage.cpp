// The data stage: each distinct dataset spec loaded once (or its decoded images read back
// from the cache), checked, and the queries that can be certified chosen.
#include <fmt/format.h>
#include <torch/types.h>

#include <unistd.h>

#include <algorithm>
#include <map>

#include "rguard/hash.hpp"
#include "rguard/tensors.hpp"
#include "pipeline/run_session.hpp"

namespace rguard::run {

namespace {

std::vector<std::int64_t> to_int64_vector(const at::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}


// Data sets read from files (a non-empty source fingerprint: paths, sizes, mtimes) keep
// their decoded images in the cache, as uint8 (what the decoders deliver; float images
// are stored as round(255 x), exact for k/255 values): a rerun skips decoding and keeps
// them as uint8. Their data fingerprint is this key (the images are a function of it),
// so a rerun does not hash the images either. Others load and are hashed.
void check_data(const Point& p, const RetrievalData& data) {
  with_context([&] { return plugin_failure(*p.spec, p.spec->dataset, "to deliver usable data"); },
               [&] { validate_retrieval_data(data, p.spec->dataset.plugin); });
}

std::string load_or_decode(Session& s, Point& p, RetrievalData& data, std::string& data_fingerprint,
                           std::string& cache_key) {
  auto plugin = [&](auto&& call) {
    return with_context([&] { return plugin_failure(*p.spec, p.spec->dataset, "while loading"); }, call);
  };
  const std::string source = plugin([&] { return p.dataset->source_fingerprint(); });
  if (source.empty()) {
    data = plugin([&] { return p.dataset->load(); });
    data_fingerprint = fingerprint(data);
    return "loaded";
  }
  const std::string key = Hasher().text("dataset/1").text(p.spec->dataset.canonical()).text(source).hex();
  data_fingerprint = Hasher().text("data/from-source").text(key).hex();
  auto to_bytes = [](const at::Tensor& images) {
    if (images.scalar_type() == torch::kUInt8) return images.contiguous();
    return images.mul(255.0).round().to(torch::kUInt8).contiguous();
  };
  auto from_bytes = [](std::vector<std::uint8_t> bytes, const std::vector<std::uint64_t>& shape) {
    // The tensor takes the vector over, without a copy: SOP's images are 18 GB.
    auto owner = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes));
    std::vector<std::int64_t> sizes(shape.begin(), shape.end());
    return torch::from_blob(owner->data(), sizes, [owner](void*) {}, torch::kUInt8);
  };
  if (auto entry = s.cache.open(kDatasetStage, key)) {
    cache_key = key;
    std::vector<std::uint64_t> shape;
    for (auto [name, set] : {std::pair<const char*, ImageSet*>{"train", &data.train}, {"query", &data.query}}) {
      auto bytes = entry->read<std::uint8_t>(fmt::format("/{}/images", name), &shape);
      set->images = from_bytes(std::move(bytes), shape);
      const auto labels = entry->read<std::int64_t>(fmt::format("/{}/labels", name));
      set->labels = torch::tensor(labels, torch::kLong);
    }
    data.gallery = data.query;  // image data sets are leave-one-out
    data.query_gallery_index = torch::tensor(entry->read<std::int64_t>("/query_gallery_index"), torch::kLong);
    data.description = entry->attribute_string("/", "description");
    return "reused";
  }
  data = plugin([&] { return p.dataset->load(); });
  check_data(p, data);  // nothing unusable goes into the cache
  if (!data.gallery.images.is_same(data.query.images)) return "loaded";  // only leave-one-out is cached
  if (!data.train.images.defined()) return "loaded";  // no train split (train_classes: []): nothing to store it as
  cache_key = key;
  s.cache.publish(kDatasetStage, key, [&](H5File& file) {
    for (auto [name, set] : {std::pair<const char*, const ImageSet*>{"train", &data.train}, {"query", &data.query}}) {
      const auto bytes = to_bytes(set->images);
      std::vector<std::uint64_t> shape(bytes.sizes().begin(), bytes.sizes().end());
      file.write(fmt::format("/{}/images", name), bytes.data_ptr<std::uint8_t>(), shape);
      file.write(fmt::format("/{}/labels", name), to_int64_vector(set->labels));
    }
    file.write("/query_gallery_index", to_int64_vector(data.query_gallery_index));
    file.set_attribute("/", "description", data.description);
  });
  return "computed";
}


// Settings whose size only the data bound, checked once the data are loaded and before any
// forward pass: otherwise they end, after training, in an allocation failure that names
// certifier.batch. certifier.pool counts the gallery's negatives (retrievalguard keeps a
// slot for each, per query); the selection samples are kept whole until their query is
// certified, one embedding (at least one double) each for every query of a block.
void check_certifier_sizes(const Point& p, std::size_t queries) {
  const StageSpec& certifier = p.spec->certifier;
  const auto gallery = static_cast<std::int64_t>(p.data->gallery_label.size());
  if (certifier.params.has("pool")) {
    const std::int64_t pool = certifier.params.get_int("pool");
    if (pool >= gallery)
      throw Error(fmt::format("{}: certifier.pool: {} negatives, but the gallery of point '{}' holds {} items (so at most "
                              "{} negatives of a query); the pool is the negatives most at risk that certificate D "
                              "tracks: set pool below {}, or 0 for every negative",
                              certifier.location.str(), pool, p.spec->point, gallery, gallery - 1, gallery));
  }
  const SamplingPlan plan = p.certifier->plan();
  if (plan.selection <= 0) return;
  const auto per_block = static_cast<double>(
      std::min<std::size_t>(queries, static_cast<std::size_t>(std::max<std::int64_t>(8, (plan.batch + plan.n - 1) / plan.n))));
  const double bytes = per_block * static_cast<double>(plan.selection) * sizeof(double);
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (memory > 0 && bytes > memory)
    throw Error(fmt::format("{}: certifier.selection: {} selection samples per query: they are kept until the query is "
                            "certified (an embedding each, {} queries at a time), at least {:.3g} "
                            "GB, more than the {:.3g} GB of memory here; Cohen et al.'s n0 is 100, and a few thousand "
                            "place certificate D's levels finely",
                            certifier.location.str(), plan.selection, per_block, bytes / 1e9, memory / 1e9));
}

}  // namespace

void load_datasets(Session& s) {
  for (auto& p : s.points) {
    const std::string canonical = p->spec->dataset.canonical();
    auto& slot = s.datasets[canonical];
    if (!slot) {
      const auto start = Clock::now();
      auto loaded = std::make_unique<LoadedData>();
      const std::string status = load_or_decode(s, *p, loaded->data, loaded->fingerprint, loaded->cache_key);
      check_data(*p, loaded->data);
      for (ImageSet* set : {&loaded->data.train, &loaded->data.query, &loaded->data.gallery})
        if (set->images.defined()) set->images = set->images.contiguous();
      loaded->gallery_label = to_int64_vector(loaded->data.gallery.labels);
      loaded->query_label = to_int64_vector(loaded->data.query.labels);
      loaded->query_gallery_index = to_int64_vector(loaded->data.query_gallery_index);
      s.report({"", "dataset", status, seconds_since(start), "",
                fmt::format("{}: {} (fingerprint {})", p->spec->dataset.plugin, loaded->data.description,
                            loaded->fingerprint.substr(0, 12))});
      slot = std::move(loaded);
    }
    p->data = slot.get();
  }
}

// Queries that retrieval can get right or wrong: at least one positive besides themselves
// (lone queries are excluded, as in pytorch-metric-learning) and at least one negative
// (without one, Recall@1 is 1 whatever the model and every radius infinite). They come in
// a seeded order whose prefixes are stable: asking for more queries keeps the ones
// already certified. A data set where no query qualifies is refused, before any training.
std::vector<std::int64_t> select_queries(Session& s, const Point& p) {
  const auto& d = *p.data;
  std::map<std::int64_t, std::int64_t> count;
  for (auto label : d.gallery_label) ++count[label];
  const auto gallery = static_cast<std::int64_t>(d.gallery_label.size());
  std::vector<std::int64_t> eligible;
  std::int64_t lone = 0, no_negative = 0;
  for (std::size_t i = 0; i < d.query_label.size(); ++i) {
    const std::int64_t self = d.query_gallery_index[i];
    const std::int64_t own = self >= 0 && d.gallery_label[static_cast<std::size_t>(self)] == d.query_label[i];
    const std::int64_t positives = count[d.query_label[i]] - own;
    const std::int64_t negatives = gallery - count[d.query_label[i]] - (self >= 0 && !own);
    if (positives < 1) ++lone;
    else if (negatives < 1) ++no_negative;
    else eligible.push_back(static_cast<std::int64_t>(i));
  }
  const std::string dataset = fmt::format("{}: dataset plugin '{}'", p.spec->dataset.location.str(), p.spec->dataset.plugin);
  if (eligible.empty() && no_negative > 0)
    throw Error(fmt::format("{}: no query can be certified: the gallery holds a single class ({} queries have no item "
                            "of another class to be confused with), so Recall@1 is 1 whatever the model; evaluate on at "
                            "least two classes",
                            dataset, no_negative));
  if (eligible.empty())
    throw Error(fmt::format("{}: no query can be certified: none of the {} queries has another item of its class in "
                            "the gallery; check the dataset's classes and protocol",
                            dataset, d.query_label.size()));
  if ((lone > 0 || no_negative > 0) && s.log)
    *s.log << fmt::format("[{:<12}] {} of {} queries cannot be certified and are left out: {} without another item of "
                          "their class in the gallery, {} without an item of another class\n",
                          "queries", lone + no_negative, d.query_label.size(), lone, no_negative);
  // Fisher-Yates with splitmix64, spelled out so the order is the same on every platform.
  std::uint64_t state = derive_seed(p.spec->seed, "queries");
  for (std::size_t i = eligible.size(); i > 1; --i) {
    state += 0x9e3779b97f4a7c15ULL;
    const std::uint64_t r = Hasher(state).digest();
    std::swap(eligible[i - 1], eligible[r % i]);
  }
  const std::int64_t wanted = p.certifier->plan().queries;
  if (wanted > 0 && static_cast<std::size_t>(wanted) < eligible.size()) eligible.resize(static_cast<std::size_t>(wanted));
  check_certifier_sizes(p, eligible.size());
  return eligible;
}


}  // namespace rguard::run
