// cub200: CUB-200-2011 from its official archive layout (CUB_200_2011/images.txt,
// image_class_labels.txt, images/...). The deep-metric-learning split: classes 1-100
// train, 101-200 are query set and gallery (leave-one-out).
#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

#include <charconv>

#include "rguard/dataset.hpp"
#include "rguard/error.hpp"
#include "rguard/images.hpp"

namespace {

// "<id> <value>" lines -> map id -> value.
std::map<std::int64_t, std::string> read_pairs(const std::string& path) {
  rguard::require_data_file(path, "dataset.root must be the CUB_200_2011 folder of the official archive");
  std::ifstream in(path);
  if (!in) throw rguard::Error(fmt::format("{}: cannot open", path));
  std::map<std::int64_t, std::string> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::int64_t id = 0;
    std::string value;
    if (!(fields >> id >> value)) throw rguard::Error(fmt::format("{}:{}: expected '<id> <value>', got '{}'", path, number, line));
    if (!out.emplace(id, value).second)
      throw rguard::Error(fmt::format("{}:{}: image id {} appears twice; each image has one line", path, number, id));
  }
  return out;
}

// A class label: a whole number.
std::int64_t class_label(const std::string& text, const std::string& file, std::int64_t id) {
  std::int64_t label = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), label);
  if (ec != std::errc() || end != text.data() + text.size())
    throw rguard::Error(fmt::format("{}: image {} has class '{}'; expected a whole number", file, id, text));
  return label;
}

class Cub200 final : public rguard::ImageListDataset {
 public:
  explicit Cub200(const rguard::Params& p)
      : ImageListDataset(p), root_(p.get_string("root")), last_train_(p.get_int("last_train_class")) {}

 private:
  Lists lists() const override {
    const auto images = read_pairs(root_ + "/images.txt");
    const auto labels = read_pairs(root_ + "/image_class_labels.txt");
    Lists l;
    for (const auto& [id, path] : images) {
      auto it = labels.find(id);
      if (it == labels.end()) throw rguard::Error(fmt::format("{}/image_class_labels.txt: no class for image {}", root_, id));
      const std::int64_t label = class_label(it->second, root_ + "/image_class_labels.txt", id);
      auto& list = label <= last_train_ ? l.train : l.eval;
      list.paths.push_back(root_ + "/images/" + path);
      list.labels.push_back(label);
    }
    l.description = fmt::format("CUB-200-2011 (classes <= {} train)", last_train_);
    return l;
  }

  std::string root_;
  std::int64_t last_train_;
};

std::vector<rguard::ParamSpec> schema() {
  return rguard::with_image_params({
      {.name = "root", .type = rguard::ParamType::Path, .default_value = nullptr,
       .doc = "the CUB_200_2011 folder (images.txt, image_class_labels.txt, images/)"},
      {.name = "last_train_class", .type = rguard::ParamType::Int, .default_value = "100",
       .doc = "classes 1..N train, the rest evaluate (the standard split is 100)", .min = 0},
  });
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Dataset, "cub200", "1.0",
              "CUB-200-2011 from the official archive; classes 1-100 train, 101-200 query set = gallery", Cub200, schema())
