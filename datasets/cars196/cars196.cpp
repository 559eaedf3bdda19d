// cars196: Stanford Cars (Cars196) from its official archive layout: cars_annos.mat (a
// MATLAB struct array `annotations` with relative_im_path and class) beside car_ims/.
// Read with Debian's libmatio. The deep-metric-learning split ignores the official
// train/test flag: classes 1-98 train, 99-196 are query set and gallery (leave-one-out).
#include <fmt/format.h>
#include <matio.h>

#include "rguard/dataset.hpp"
#include "rguard/error.hpp"
#include "rguard/images.hpp"

namespace {

using rguard::Error;

std::string char_field(matvar_t* annotations, const char* name, std::size_t index, const std::string& file) {
  matvar_t* v = Mat_VarGetStructFieldByName(annotations, name, index);
  if (!v || v->class_type != MAT_C_CHAR || !v->data)
    throw Error(fmt::format("{}: annotations({}).{} is not text", file, index + 1, name));
  const std::size_t n = v->nbytes / std::max<std::size_t>(1, v->data_size);
  std::string text;
  for (std::size_t i = 0; i < n; ++i)
    text += v->data_size == 1 ? static_cast<const char*>(v->data)[i]
                              : static_cast<char>(static_cast<const std::uint16_t*>(v->data)[i]);
  return text;
}

double number_field(matvar_t* annotations, const char* name, std::size_t index, const std::string& file) {
  matvar_t* v = Mat_VarGetStructFieldByName(annotations, name, index);
  if (!v || !v->data) throw Error(fmt::format("{}: annotations({}).{} is missing", file, index + 1, name));
  switch (v->class_type) {
    case MAT_C_DOUBLE: return *static_cast<const double*>(v->data);
    case MAT_C_SINGLE: return *static_cast<const float*>(v->data);
    case MAT_C_UINT8: return *static_cast<const std::uint8_t*>(v->data);
    case MAT_C_INT8: return *static_cast<const std::int8_t*>(v->data);
    case MAT_C_UINT16: return *static_cast<const std::uint16_t*>(v->data);
    case MAT_C_INT16: return *static_cast<const std::int16_t*>(v->data);
    case MAT_C_INT32: return *static_cast<const std::int32_t*>(v->data);
    default: throw Error(fmt::format("{}: annotations({}).{} is not a number", file, index + 1, name));
  }
}

class Cars196 final : public rguard::ImageListDataset {
 public:
  explicit Cars196(const rguard::Params& p)
      : ImageListDataset(p), root_(p.get_string("root")), last_train_(p.get_int("last_train_class")) {}

 private:
  Lists lists() const override {
    const std::string file = root_ + "/cars_annos.mat";
    rguard::require_data_file(file, "dataset.root must be the folder with cars_annos.mat and car_ims/");
    mat_t* mat = Mat_Open(file.c_str(), MAT_ACC_RDONLY);
    if (!mat)
      throw Error(fmt::format("{}: not a MATLAB file libmatio can read; the official archive's cars_annos.mat is one", file));
    Lists l;
    matvar_t* annotations = Mat_VarRead(mat, "annotations");
    try {
      if (!annotations || annotations->class_type != MAT_C_STRUCT)
        throw Error(fmt::format("{}: no struct array 'annotations'", file));
      std::size_t count = 1;
      for (int d = 0; d < annotations->rank; ++d) count *= annotations->dims[d];
      for (std::size_t i = 0; i < count; ++i) {
        const auto label = static_cast<std::int64_t>(number_field(annotations, "class", i, file));
        auto& list = label <= last_train_ ? l.train : l.eval;
        list.paths.push_back(root_ + "/" + char_field(annotations, "relative_im_path", i, file));
        list.labels.push_back(label);
      }
    } catch (...) {
      Mat_VarFree(annotations);
      Mat_Close(mat);
      throw;
    }
    Mat_VarFree(annotations);
    Mat_Close(mat);
    l.description = fmt::format("Cars196 (classes <= {} train)", last_train_);
    return l;
  }

  std::string root_;
  std::int64_t last_train_;
};

std::vector<rguard::ParamSpec> schema() {
  return rguard::with_image_params({
      {.name = "root", .type = rguard::ParamType::Path, .default_value = nullptr,
       .doc = "folder with cars_annos.mat and car_ims/ (the official archive)"},
      {.name = "last_train_class", .type = rguard::ParamType::Int, .default_value = "98",
       .doc = "classes 1..N train, the rest evaluate (the standard split is 98)", .min = 0},
  });
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Dataset, "cars196", "1.0",
              "Cars196 from the official archive (cars_annos.mat); classes 1-98 train, 99-196 query set = gallery",
              Cars196, schema())
