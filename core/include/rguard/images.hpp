// Image files to tensors for the image-folder data sets: JPEG/PNG decoding (Debian's
// libstb), shorter side resized, centre crop, pixels in [0, 1], decoded in parallel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rguard/data.hpp"
#include "rguard/dataset.hpp"
#include "rguard/params.hpp"

namespace rguard {

struct ImageTransform {
  std::int64_t channels = 3;  // 3 (grey files are repeated) or 1 (colour files are averaged)
  std::int64_t resize = 256;  // shorter side after resizing (0 = keep)
  std::int64_t crop = 224;    // centre crop side (0 = none: all images must then share a size)
};

struct ImageList {
  std::vector<std::string> paths;
  std::vector<std::int64_t> labels;
};

// A data set's own parameters followed by the "resize", "crop", "channels", "on_error"
// parameters every image data set declares.
std::vector<ParamSpec> with_image_params(std::vector<ParamSpec> own);
ImageTransform parse_image_transform(const Params& params);

// Decodes every file; an unreadable one is an Error naming it, or, with skip_unreadable,
// is left out and named in `skipped`.
ImageSet load_images(const ImageList& list, const ImageTransform& transform, bool skip_unreadable,
                     std::vector<std::string>* skipped);

// Base of the image-file data sets: a subclass lists the train and evaluation files; this
// decodes them (skipping unreadable ones on request), builds the leave-one-out protocol and
// fingerprints the files for the decoded-image cache.
class ImageListDataset : public Dataset {
 public:
  explicit ImageListDataset(const Params& params);
  RetrievalData load() override;
  std::string source_fingerprint() const override;

 protected:
  struct Lists {
    ImageList train, eval;
    std::string description;  // e.g. "CUB-200-2011: classes 1-100 train"
  };
  virtual Lists lists() const = 0;

 private:
  ImageTransform transform_;
  bool skip_;
};

// The evaluation set as both query set and gallery, each query excluding itself.
// A data set's file must be a non-empty regular file before it is opened (a FIFO would
// block, a folder or device has no content): throws rguard::Error "<path>: <what is wrong>;
// <hint>" otherwise.
void require_data_file(const std::string& path, const std::string& hint);

RetrievalData leave_one_out(ImageSet train, ImageSet eval, std::string description);

}  // namespace rguard
