#include "rguard/images.hpp"

#include <fmt/format.h>
#include <stb_image.h>
#include <stb_image_resize.h>
#include <tbb/parallel_for.h>
#include <torch/types.h>

#include <filesystem>
#include <mutex>

#include "rguard/error.hpp"
#include "rguard/hash.hpp"

namespace rguard {

std::vector<ParamSpec> with_image_params(std::vector<ParamSpec> own) {
  const std::vector<ParamSpec> image{
      {.name = "resize", .type = ParamType::Int, .default_value = "256",
       .doc = "shorter side after resizing (0 = keep the file's size); at most 4096, far beyond any retrieval model's input",
       .min = 0, .max = 4096},
      {.name = "crop", .type = ParamType::Int, .default_value = "224", .doc = "centre crop side (0 = no crop); at most 4096",
       .min = 0, .max = 4096},
      {.name = "channels", .type = ParamType::Int, .default_value = "3", .doc = "3 (RGB) or 1 (grey)", .min = 1, .max = 3},
      {.name = "on_error", .type = ParamType::String, .default_value = "fail",
       .doc = "an unreadable image file: fail (naming it) or skip it (and list it)", .choices = "fail|skip"},
  };
  own.insert(own.end(), image.begin(), image.end());
  return own;
}

ImageTransform parse_image_transform(const Params& p) {
  ImageTransform t;
  t.channels = p.get_int("channels");
  t.resize = p.get_int("resize");
  t.crop = p.get_int("crop");
  if (t.channels == 2) throw Error("dataset.channels: expected 1 or 3, got 2");
  if (t.crop > 0 && t.resize > 0 && t.crop > t.resize)
    throw Error(fmt::format("dataset.crop ({}) is larger than dataset.resize ({}); crop at most the resized side", t.crop,
                            t.resize));
  return t;
}

namespace {

// One file -> [channels, side, side] bytes, k standing for k/255 (or its own size without crop).
std::vector<std::uint8_t> decode(const std::string& path, const ImageTransform& t, std::int64_t& height, std::int64_t& width) {
  // Never opened unless it is a regular file (links followed): a FIFO would block, a device
  // (/dev/zero) never ends, a folder has no pixels.
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status))
    throw Error(fmt::format("{}: not found{}", path, fs::is_symlink(fs::symlink_status(path, ec)) ? " (a broken symbolic link)" : ""));
  if (fs::is_directory(status)) throw Error(fmt::format("{}: not a regular file (a folder)", path));
  if (!fs::is_regular_file(status)) throw Error(fmt::format("{}: not a regular file (a FIFO, socket or device)", path));
  int w = 0, h = 0, n = 0;
  // The header first: a small file may announce an image far larger than memory.
  if (stbi_info(path.c_str(), &w, &h, &n) && static_cast<std::int64_t>(w) * h > (std::int64_t{1} << 26))
    throw Error(fmt::format("{}: announces {}x{} pixels, more than the 67 megapixels rguard decodes; resize it first", path,
                            w, h));
  unsigned char* pixels = stbi_load(path.c_str(), &w, &h, &n, static_cast<int>(t.channels));
  if (!pixels) throw Error(fmt::format("{}: cannot decode the image ({})", path, stbi_failure_reason()));
  std::vector<unsigned char> image(pixels, pixels + static_cast<std::size_t>(w) * h * t.channels);
  stbi_image_free(pixels);
  if (t.resize > 0) {
    const double scale = static_cast<double>(t.resize) / std::min(w, h);
    const int nw = std::max<int>(1, static_cast<int>(std::lround(w * scale))), nh = std::max<int>(1, static_cast<int>(std::lround(h * scale)));
    if (static_cast<std::int64_t>(nw) * nh > (std::int64_t{1} << 26))
      throw Error(fmt::format("{}: resizing {}x{} to a shorter side of {} gives {}x{}, more than 67 megapixels; lower "
                              "dataset.resize",
                              path, w, h, t.resize, nw, nh));
    std::vector<unsigned char> resized(static_cast<std::size_t>(nw) * nh * t.channels);
    if (!stbir_resize_uint8(image.data(), w, h, 0, resized.data(), nw, nh, 0, static_cast<int>(t.channels)))
      throw Error(fmt::format("{}: cannot resize the image", path));
    image.swap(resized);
    w = nw;
    h = nh;
  }
  int x0 = 0, y0 = 0, cw = w, ch = h;
  if (t.crop > 0) {
    if (w < t.crop || h < t.crop)
      throw Error(fmt::format("{}: {}x{} is smaller than the crop {}; set dataset.resize >= crop", path, w, h, t.crop));
    cw = ch = static_cast<int>(t.crop);
    x0 = (w - cw) / 2;
    y0 = (h - ch) / 2;
  }
  height = ch;
  width = cw;
  std::vector<std::uint8_t> out(static_cast<std::size_t>(t.channels) * ch * cw);
  for (std::int64_t c = 0; c < t.channels; ++c)
    for (int y = 0; y < ch; ++y)
      for (int x = 0; x < cw; ++x)
        out[static_cast<std::size_t>((c * ch + y) * cw + x)] =
            image[(static_cast<std::size_t>(y0 + y) * w + static_cast<std::size_t>(x0 + x)) * t.channels + static_cast<std::size_t>(c)];
  return out;
}

}  // namespace

ImageSet load_images(const ImageList& list, const ImageTransform& t, bool skip_unreadable,
                     std::vector<std::string>* skipped) {
  const std::size_t n = list.paths.size();
  std::vector<std::vector<std::uint8_t>> decoded(n);
  std::vector<std::int64_t> heights(n, 0), widths(n, 0);
  std::vector<std::string> errors(n);
  tbb::parallel_for(std::size_t{0}, n, [&](std::size_t i) {
    try {
      decoded[i] = decode(list.paths[i], t, heights[i], widths[i]);
    } catch (const Error& e) {
      errors[i] = e.what();
    }
  });
  std::vector<std::size_t> kept;
  for (std::size_t i = 0; i < n; ++i) {
    if (errors[i].empty()) {
      kept.push_back(i);
    } else if (skip_unreadable) {
      if (skipped) skipped->push_back(errors[i]);
    } else {
      throw Error(errors[i] + " (set dataset.on_error: skip to leave unreadable files out)");
    }
  }
  ImageSet set;
  if (kept.empty()) {
    set.images = torch::zeros({0, t.channels, std::max<std::int64_t>(t.crop, 1), std::max<std::int64_t>(t.crop, 1)}, torch::kUInt8);
    set.labels = torch::zeros({0}, torch::kLong);
    return set;
  }
  const std::int64_t h = heights[kept.front()], w = widths[kept.front()];
  set.images = torch::empty({static_cast<std::int64_t>(kept.size()), t.channels, h, w}, torch::kUInt8);
  set.labels = torch::empty({static_cast<std::int64_t>(kept.size())}, torch::kLong);
  for (std::size_t k = 0; k < kept.size(); ++k) {
    const std::size_t i = kept[k];
    if (heights[i] != h || widths[i] != w)
      throw Error(fmt::format("{}: {}x{} differs from {}x{} of the other images; set dataset.crop", list.paths[i], heights[i],
                              widths[i], h, w));
    std::memcpy(set.images[static_cast<std::int64_t>(k)].data_ptr<std::uint8_t>(), decoded[i].data(), decoded[i].size());
    decoded[i] = {};  // the set holds it now: peak memory one copy, not two
    set.labels[static_cast<std::int64_t>(k)] = list.labels[i];
  }
  return set;
}

ImageListDataset::ImageListDataset(const Params& params)
    : transform_(parse_image_transform(params)), skip_(params.get_string("on_error") == "skip") {}

RetrievalData ImageListDataset::load() {
  const Lists l = lists();
  std::vector<std::string> skipped;
  auto train = load_images(l.train, transform_, skip_, &skipped);
  auto eval = load_images(l.eval, transform_, skip_, &skipped);
  for (const auto& s : skipped) fmt::print(stderr, "warning: skipped {}\n", s);
  std::string description = fmt::format("{}: train {}, eval {} images{}", l.description, train.size(), eval.size(),
                                        skipped.empty() ? "" : fmt::format(" ({} unreadable skipped)", skipped.size()));
  return leave_one_out(std::move(train), std::move(eval), std::move(description));
}

std::string ImageListDataset::source_fingerprint() const {
  const Lists l = lists();
  Hasher h;
  h.u64(static_cast<std::uint64_t>(transform_.channels)).u64(static_cast<std::uint64_t>(transform_.resize))
      .u64(static_cast<std::uint64_t>(transform_.crop)).u64(skip_);
  for (const ImageList* list : {&l.train, &l.eval}) {
    h.u64(list->paths.size());
    for (std::size_t i = 0; i < list->paths.size(); ++i) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(list->paths[i], ec);
      const auto time = std::filesystem::last_write_time(list->paths[i], ec).time_since_epoch().count();
      h.text(list->paths[i]).u64(ec ? 0 : size).u64(static_cast<std::uint64_t>(time)).u64(static_cast<std::uint64_t>(list->labels[i]));
    }
  }
  return h.hex();
}

void require_data_file(const std::string& path, const std::string& hint) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw Error(fmt::format("{}: not found; {}", path, hint));
  if (fs::is_directory(status)) throw Error(fmt::format("{}: is a folder, expected a file; {}", path, hint));
  if (!fs::is_regular_file(status)) throw Error(fmt::format("{}: not a regular file (a FIFO, socket or device); {}", path, hint));
  if (fs::file_size(path, ec) == 0) throw Error(fmt::format("{}: empty; {}", path, hint));
}

RetrievalData leave_one_out(ImageSet train, ImageSet eval, std::string description) {
  RetrievalData data;
  data.train = std::move(train);
  data.query = std::move(eval);
  data.gallery = data.query;
  data.query_gallery_index = torch::arange(data.query.size(), torch::kLong);
  data.description = std::move(description);
  return data;
}

}  // namespace rguard
