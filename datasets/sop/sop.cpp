// sop: Stanford Online Products from its official archive layout (Ebay_train.txt,
// Ebay_test.txt with columns image_id class_id super_class_id path): the train file
// trains (11,318 classes), the test file is query set and gallery (11,316 classes,
// leave-one-out).
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "rguard/dataset.hpp"
#include "rguard/error.hpp"
#include "rguard/images.hpp"

namespace {

rguard::ImageList read_list(const std::string& root, const std::string& file, std::int64_t max_images) {
  const std::string path = root + "/" + file;
  rguard::require_data_file(path, "dataset.root must be the Stanford_Online_Products folder");
  std::ifstream in(path);
  if (!in) throw rguard::Error(fmt::format("{}: cannot open", path));
  rguard::ImageList list;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (line.empty() || (number == 1 && line.rfind("image_id", 0) == 0)) continue;  // the header, if present
    std::istringstream fields(line);
    std::int64_t image = 0, label = 0, super = 0;
    std::string relative;
    if (!(fields >> image >> label >> super >> relative))
      throw rguard::Error(fmt::format("{}:{}: expected 'image_id class_id super_class_id path', got '{}'", path, number, line));
    list.paths.push_back(root + "/" + relative);
    list.labels.push_back(label);
    if (max_images > 0 && static_cast<std::int64_t>(list.paths.size()) >= max_images) break;
  }
  return list;
}

class Sop final : public rguard::ImageListDataset {
 public:
  explicit Sop(const rguard::Params& p)
      : ImageListDataset(p), root_(p.get_string("root")), max_images_(p.get_int("max_images")) {}

 private:
  Lists lists() const override {
    return {read_list(root_, "Ebay_train.txt", max_images_), read_list(root_, "Ebay_test.txt", max_images_),
            "Stanford Online Products"};
  }

  std::string root_;
  std::int64_t max_images_;
};

std::vector<rguard::ParamSpec> schema() {
  return rguard::with_image_params({
      {.name = "root", .type = rguard::ParamType::Path, .default_value = nullptr,
       .doc = "the Stanford_Online_Products folder (Ebay_train.txt, Ebay_test.txt, images)"},
      {.name = "max_images", .type = rguard::ParamType::Int, .default_value = "0",
       .doc = "read only the first N lines of each list (0 = all)", .min = 0},
  });
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Dataset, "sop", "1.0",
              "Stanford Online Products from the official archive; Ebay_train trains, Ebay_test is query set = gallery", Sop,
              schema())
