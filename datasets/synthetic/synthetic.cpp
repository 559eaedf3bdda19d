// synthetic: small, fast, deterministic class-structured images for tests. Each class has
// a prototype image; members are the prototype plus small uniform jitter, in [0, 1].
// The first `train_classes` classes form the train split; the rest are query set and
// gallery (leave-one-out).
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "rguard/dataset.hpp"
#include "rguard/error.hpp"

namespace {

using rguard::ParamSpec;
using rguard::ParamType;

class Synthetic final : public rguard::Dataset {
 public:
  explicit Synthetic(const rguard::Params& p)
      : classes_(p.get_int("classes")),
        train_classes_(p.get_int("train_classes")),
        per_class_(p.get_int("per_class")),
        size_(p.get_int("image_size")),
        channels_(p.get_int("channels")),
        jitter_(p.get_float("jitter")),
        seed_(static_cast<std::uint64_t>(p.get_int("seed"))) {
    if (train_classes_ >= classes_ - 1)
      throw rguard::Error(fmt::format("dataset.train_classes: {} leaves fewer than two evaluation classes of {}",
                                      train_classes_, classes_));
  }

  rguard::RetrievalData load() override {
    at::Generator generator = at::detail::createCPUGenerator(seed_);
    auto prototypes = at::rand({classes_, channels_, size_, size_}, generator, torch::kFloat) * 0.6 + 0.2;
    auto labels = torch::arange(classes_, torch::kLong).repeat_interleave(per_class_);
    auto images = prototypes.index_select(0, labels) +
                  (at::rand({classes_ * per_class_, channels_, size_, size_}, generator, torch::kFloat) - 0.5) * (2 * jitter_);
    images = images.clamp(0.0, 1.0).contiguous();
    auto is_train = labels < train_classes_;
    auto train_index = is_train.nonzero().squeeze(1), eval_index = (~is_train).nonzero().squeeze(1);
    rguard::RetrievalData data;
    data.train = {images.index_select(0, train_index), labels.index_select(0, train_index)};
    data.query = {images.index_select(0, eval_index), labels.index_select(0, eval_index)};
    data.gallery = data.query;
    data.query_gallery_index = torch::arange(data.query.size(), torch::kLong);
    data.description = fmt::format("synthetic {} classes x {} images of {}x{}x{}", classes_, per_class_, channels_,
                                   size_, size_);
    return data;
  }

 private:
  std::int64_t classes_, train_classes_, per_class_, size_, channels_;
  double jitter_;
  std::uint64_t seed_;
};

std::vector<ParamSpec> schema() {
  return {
      {.name = "classes", .type = ParamType::Int, .default_value = "6", .doc = "number of classes", .min = 3},
      {.name = "train_classes", .type = ParamType::Int, .default_value = "3", .doc = "the first N classes train", .min = 0},
      {.name = "per_class", .type = ParamType::Int, .default_value = "16", .doc = "images per class", .min = 2},
      {.name = "image_size", .type = ParamType::Int, .default_value = "12", .doc = "side of the square images", .min = 4},
      {.name = "channels", .type = ParamType::Int, .default_value = "1", .doc = "colour channels (3 for ImageNet-shaped models)", .min = 1},
      {.name = "jitter", .type = ParamType::Float, .default_value = "0.1", .doc = "uniform per-pixel jitter", .min = 0},
      {.name = "seed", .type = ParamType::Int, .default_value = "1", .doc = "generator seed of the data", .min = 0},
  };
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Dataset, "synthetic", "1.1", "small deterministic class-structured images for tests",
              Synthetic, schema())
