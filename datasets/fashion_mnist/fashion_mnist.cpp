// fashion_mnist: Fashion-MNIST from Debian's dataset-fashion-mnist package (gzip IDX
// files). Default protocol: train on classes 0-4 of the train split, evaluate on classes
// 5-9 of the test split, which is both query set and gallery (leave-one-out).
#include <fmt/format.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "rguard/dataset.hpp"
#include "rguard/hash.hpp"
#include "rguard/error.hpp"

namespace {

using rguard::Error;
using rguard::ParamSpec;
using rguard::ParamType;

std::uint32_t big_endian(const unsigned char* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

// A gzip'ed IDX file: the header (magic, then one size per dimension) and exactly the bytes
// it announces. Decompression stops there: a file holding more (another format, or a gzip
// bomb) or less (truncated) is refused, and nothing larger than the header says is ever
// held in memory.
struct Idx {
  std::vector<std::int64_t> sizes;
  std::vector<unsigned char> data;
};

Idx read_idx(const std::string& path, std::uint32_t magic, std::size_t dims) {
  const std::string hint = "reinstall the Debian package dataset-fashion-mnist (bash scripts/setup.sh installs it) or "
                           "point dataset.root at a folder with the four Fashion-MNIST IDX files";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(fmt::format("{}: not found; {}", path, hint));
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(fmt::format("{}: not a regular file; {}", path, hint));
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw Error(fmt::format("{}: cannot open; {}", path, hint));
  auto read = [&](unsigned char* into, std::size_t bytes) {
    std::size_t done = 0;
    while (done < bytes) {
      const int got = gzread(file, into + done, static_cast<unsigned>(std::min<std::size_t>(bytes - done, 1 << 20)));
      if (got < 0) {
        int code = 0;
        const std::string why = gzerror(file, &code);
        gzclose(file);
        throw Error(fmt::format("{}: damaged gzip data ({}); {}", path, why, hint));
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  };
  const std::size_t header_bytes = 4 * (1 + dims);
  std::vector<unsigned char> header(header_bytes);
  if (read(header.data(), header_bytes) != header_bytes || big_endian(header.data()) != magic) {
    gzclose(file);
    throw Error(fmt::format("{}: not an IDX file of {} dimension(s) (magic {} expected); {}", path, dims, magic, hint));
  }
  Idx idx;
  std::uint64_t bytes = 1;
  for (std::size_t d = 0; d < dims; ++d) {
    idx.sizes.push_back(big_endian(header.data() + 4 * (d + 1)));
    bytes *= static_cast<std::uint64_t>(idx.sizes.back());
    if (bytes > (std::uint64_t{1} << 30)) {
      gzclose(file);
      throw Error(fmt::format("{}: its header announces more than 1 GiB of data, far more than Fashion-MNIST's 47 MB; {}",
                              path, hint));
    }
  }
  idx.data.resize(static_cast<std::size_t>(bytes));
  const std::size_t got = read(idx.data.data(), idx.data.size());
  unsigned char extra = 0;
  const bool more = got == idx.data.size() && read(&extra, 1) == 1;
  gzclose(file);
  if (got < idx.data.size())
    throw Error(fmt::format("{}: truncated: its header announces {} bytes of data, the file holds {}; {}", path, bytes, got,
                            hint));
  if (more)
    throw Error(fmt::format("{}: holds more data than its header announces ({} bytes); {}", path, bytes, hint));
  return idx;
}

struct Split {
  torch::Tensor images;  // uint8 [N, 28, 28]
  torch::Tensor labels;  // int64 [N]
};

Split read_split(const std::string& root, const std::string& prefix) {
  const std::string image_path = fmt::format("{}/{}-images-idx3-ubyte.gz", root, prefix);
  const std::string label_path = fmt::format("{}/{}-labels-idx1-ubyte.gz", root, prefix);
  auto images = read_idx(image_path, 2051, 3);
  auto labels = read_idx(label_path, 2049, 1);
  const std::int64_t n = images.sizes[0], rows = images.sizes[1], cols = images.sizes[2];
  if (labels.sizes[0] != n)
    throw Error(fmt::format("{} holds {} images but {} holds {} labels; the two files do not belong together",
                            image_path, n, label_path, labels.sizes[0]));
  if (rows != 28 || cols != 28)
    throw Error(fmt::format("{}: images of {}x{} pixels; Fashion-MNIST's are 28x28", image_path, rows, cols));
  Split split;
  split.images = torch::from_blob(images.data.data(), {n, rows, cols}, torch::kUInt8).clone();
  split.labels = torch::from_blob(labels.data.data(), {n}, torch::kUInt8).to(torch::kLong);
  if (n > 0 && split.labels.max().item<std::int64_t>() > 9)
    throw Error(fmt::format("{}: a label above 9; Fashion-MNIST has classes 0..9", label_path));
  return split;
}

rguard::ImageSet select(const Split& split, const std::vector<std::int64_t>& classes, std::int64_t limit) {
  auto mask = torch::zeros_like(split.labels, torch::kBool);
  for (auto c : classes) mask |= split.labels == c;
  auto index = mask.nonzero().squeeze(1);
  if (limit > 0 && index.size(0) > limit) index = index.slice(0, 0, limit);
  rguard::ImageSet set;
  set.images = split.images.index_select(0, index).unsqueeze(1);  // uint8: k stands for k/255
  set.labels = split.labels.index_select(0, index);
  return set;
}

class FashionMnist final : public rguard::Dataset {
 public:
  explicit FashionMnist(const rguard::Params& p)
      : root_(p.get_string("root")),
        protocol_(p.get_string("protocol")),
        gallery_split_(p.get_string("gallery_split")),
        train_classes_(p.get_int_list("train_classes")),
        eval_classes_(p.get_int_list("eval_classes")),
        max_train_(p.get_int("max_train")),
        max_eval_(p.get_int("max_eval")) {
    if (protocol_ == "leave_one_out" && gallery_split_ != "test")
      throw Error("dataset.gallery_split: leave_one_out uses the test split as gallery; set protocol: query_gallery "
                  "to search another split");
    for (const auto* list : {&train_classes_, &eval_classes_})
      for (auto c : *list)
        if (c < 0 || c > 9) throw Error(fmt::format("dataset: Fashion-MNIST classes are 0..9, got {}", c));
  }

  // The four IDX files by path, size and mtime: the decoded images are cached under it.
  std::string source_fingerprint() const override {
    rguard::Hasher h;
    for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                             "t10k-labels-idx1-ubyte.gz"}) {
      const std::string path = fmt::format("{}/{}", root_, name);
      std::error_code ec;
      const auto size = std::filesystem::file_size(path, ec);
      const auto time = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
      h.text(path).u64(ec ? 0 : size).u64(static_cast<std::uint64_t>(time));
    }
    return h.hex();
  }

  rguard::RetrievalData load() override {
    rguard::RetrievalData data;
    const Split test = read_split(root_, "t10k");
    const bool need_train = !train_classes_.empty() || gallery_split_ == "train";
    const Split train = need_train ? read_split(root_, "train") : Split{};
    if (!train_classes_.empty()) data.train = select(train, train_classes_, max_train_);
    data.query = select(test, eval_classes_, max_eval_);
    if (protocol_ == "leave_one_out") {
      data.gallery = data.query;
      data.query_gallery_index = torch::arange(data.query.size(), torch::kLong);
    } else {
      data.gallery = select(gallery_split_ == "train" ? train : test, eval_classes_, max_eval_);
      data.query_gallery_index = torch::full({data.query.size()}, -1, torch::kLong);
      if (gallery_split_ == "test") data.query_gallery_index = torch::arange(data.query.size(), torch::kLong);
    }
    data.description = fmt::format("train {} (classes {}), query {} / gallery {} (classes {}, {})", data.train.size(),
                                   fmt::join(train_classes_, ","), data.query.size(), data.gallery.size(),
                                   fmt::join(eval_classes_, ","), protocol_);
    return data;
  }

 private:
  std::string root_, protocol_, gallery_split_;
  std::vector<std::int64_t> train_classes_, eval_classes_;
  std::int64_t max_train_, max_eval_;
};

std::vector<ParamSpec> schema() {
  return {
      {.name = "root", .type = ParamType::Path, .default_value = "/usr/share/datasets/fashion-mnist",
       .doc = "folder with the gzip IDX files (Debian package dataset-fashion-mnist)"},
      {.name = "protocol", .type = ParamType::String, .default_value = "leave_one_out",
       .doc = "leave_one_out: the test split is query set and gallery, the query itself excluded; "
              "query_gallery: queries from the test split, gallery from gallery_split",
       .choices = "leave_one_out|query_gallery"},
      {.name = "gallery_split", .type = ParamType::String, .default_value = "test",
       .doc = "split the gallery comes from (query_gallery protocol)", .choices = "test|train"},
      {.name = "train_classes", .type = ParamType::IntList, .default_value = "[0, 1, 2, 3, 4]",
       .doc = "classes of the train split used for training ([] = no training data)", .min = 0, .max = 9},
      {.name = "eval_classes", .type = ParamType::IntList, .default_value = "[5, 6, 7, 8, 9]",
       .doc = "classes of the query set and gallery", .min = 0, .max = 9},
      {.name = "max_train", .type = ParamType::Int, .default_value = "0",
       .doc = "keep only the first N training images (0 = all)", .min = 0},
      {.name = "max_eval", .type = ParamType::Int, .default_value = "0",
       .doc = "keep only the first N images of each evaluation split (0 = all)", .min = 0},
  };
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Dataset, "fashion_mnist", "1.1",
              "Fashion-MNIST from Debian's dataset-fashion-mnist, 28x28 grey, disjoint train/eval classes",
              FashionMnist, schema())
