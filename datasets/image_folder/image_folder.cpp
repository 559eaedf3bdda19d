// image_folder: <root>/<class>/<image>.{jpg,jpeg,png}. Classes in name order; the first
// train_fraction of them train, the rest are query set and gallery (leave-one-out), the
// split of CUB-200-2011, Cars196 and SOP in deep metric learning.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "rguard/dataset.hpp"
#include "rguard/error.hpp"
#include "rguard/images.hpp"

namespace {

namespace fs = std::filesystem;

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

class ImageFolder final : public rguard::ImageListDataset {
 public:
  explicit ImageFolder(const rguard::Params& p)
      : ImageListDataset(p),
        root_(p.get_string("root")),
        fraction_(p.get_float("train_fraction")),
        per_class_(p.get_int("max_per_class")) {}

 private:
  Lists lists() const override {
    std::error_code ec;
    if (!fs::is_directory(root_, ec))
      throw rguard::Error(fmt::format("{}: not a folder (dataset.root: one sub-folder of images per class)", root_));
    std::vector<fs::path> classes;
    for (const auto& item : fs::directory_iterator(root_))
      if (item.is_directory()) classes.push_back(item.path());
    std::sort(classes.begin(), classes.end());
    if (classes.size() < 2) throw rguard::Error(fmt::format("{}: found {} class folders, need at least 2", root_, classes.size()));
    const auto train_count = static_cast<std::size_t>(std::lround(fraction_ * static_cast<double>(classes.size())));
    Lists l;
    for (std::size_t c = 0; c < classes.size(); ++c) {
      std::vector<fs::path> files;
      // Whatever is named like an image is listed, a FIFO, device or broken link too: the
      // decoder refuses it by name (or dataset.on_error: skip leaves it out and counts it)
      // instead of it vanishing from the data set unseen.
      for (const auto& item : fs::directory_iterator(classes[c]))
        if (is_image(item.path())) files.push_back(item.path());
      std::sort(files.begin(), files.end());
      if (per_class_ > 0 && files.size() > static_cast<std::size_t>(per_class_)) files.resize(static_cast<std::size_t>(per_class_));
      auto& list = c < train_count ? l.train : l.eval;
      for (const auto& f : files) {
        list.paths.push_back(f.string());
        list.labels.push_back(static_cast<std::int64_t>(c));
      }
    }
    l.description = fmt::format("{}: {} classes, the first {} train", root_, classes.size(), train_count);
    return l;
  }

  std::string root_;
  double fraction_;
  std::int64_t per_class_;
};

std::vector<rguard::ParamSpec> schema() {
  return rguard::with_image_params({
      {.name = "root", .type = rguard::ParamType::Path, .default_value = nullptr, .doc = "folder with one sub-folder per class"},
      {.name = "train_fraction", .type = rguard::ParamType::Float, .default_value = "0.5",
       .doc = "leading fraction of the classes (in name order) used for training", .min = 0, .max = 1},
      {.name = "max_per_class", .type = rguard::ParamType::Int, .default_value = "0",
       .doc = "keep at most N images per class, in name order (0 = all)", .min = 0},
  });
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Dataset, "image_folder", "1.0",
              "JPEG/PNG images in one folder per class; leading classes train, the rest query set = gallery",
              ImageFolder, schema())
