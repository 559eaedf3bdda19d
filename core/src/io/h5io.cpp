#include "io/h5io.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <mutex>

#include "rguard/error.hpp"

namespace rguard {

namespace {

// Every HDF5 call goes through here: one thread at a time (HDF5 serialises calls anyway),
// with the library prepared for how rguard uses it.
std::unique_lock<std::recursive_mutex> enter_hdf5() {
  static std::recursive_mutex mutex;
  std::unique_lock lock(mutex);
  // Before HDF5 initialises: no atexit handler. A file whose close failed (a full disk)
  // stays in HDF5's tables and that handler then crashes the process at exit (HDF5
  // 1.10.8); every file here is closed explicitly, so there is nothing for it to do.
  static std::once_flag once;
  std::call_once(once, [] { H5dont_atexit(); });
  // Failures become rguard::Error; HDF5's own printing is off. Its error stacks are per
  // thread in thread-safe builds (Debian's), so each thread turns it off.
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
  return lock;
}

// Closes an HDF5 identifier when it goes out of scope.
class Handle {
 public:
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*closer_)(hid_t);
};

template <class T> hid_t native_type();
template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> hid_t native_type<std::int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<std::uint8_t>() { return H5T_NATIVE_UINT8; }

// Creation properties without modification times, so equal content gives equal bytes
// (certificates.h5 of a resumed run is byte-identical to an uninterrupted one).
Handle dataset_properties() {
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(dcpl.get(), 0);
  return dcpl;
}

// Creates the missing groups of `path`'s parent, without times.
void create_parents(hid_t file, const std::string& path) {
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    const std::string group = path.substr(0, slash);
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) > 0) continue;
    Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
    H5Pset_obj_track_times(gcpl.get(), 0);
    Handle g(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
  }
}

template <class T> H5T_class_t type_class() { return std::is_floating_point_v<T> ? H5T_FLOAT : H5T_INTEGER; }

[[noreturn]] void fail(const std::string& path, const std::string& object, const std::string& what) {
  throw Error(fmt::format("{}: {}: {}", path, object, what));
}

Handle open_object(hid_t file, const std::string& path, const std::string& object) {
  Handle handle(H5Oopen(file, object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!handle.ok()) fail(path, object, "not found in the HDF5 file");
  return handle;
}

}  // namespace

H5File H5File::create(const std::string& path) {
  auto lock = enter_hdf5();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw Error(fmt::format("{}: cannot create the HDF5 file (is the folder writable?)", path));
  return H5File(path, id);
}

H5File H5File::open_read(const std::string& path) {
  auto lock = enter_hdf5();
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw Error(fmt::format("{}: cannot open as an HDF5 file (missing or damaged)", path));
  return H5File(path, id);
}

H5File::H5File(H5File&& other) noexcept : path_(std::move(other.path_)), id_(other.id_) { other.id_ = -1; }

H5File& H5File::operator=(H5File&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    id_ = other.id_;
    other.id_ = -1;
  }
  return *this;
}

H5File::~H5File() { release(); }

bool H5File::release() noexcept {
  if (id_ < 0) return true;
  auto lock = enter_hdf5();
  const bool flushed = H5Fflush(id_, H5F_SCOPE_LOCAL) >= 0;
  const bool closed = H5Fclose(id_) >= 0;
  id_ = -1;
  return flushed && closed;
}

void H5File::close() {
  // HDF5 buffers metadata and may write the data only now: a full disk shows up here.
  if (!release()) throw Error(fmt::format("{}: writing failed when closing the file (disk full?)", path_));
}

bool H5File::exists(const std::string& object) const {
  auto lock = enter_hdf5();
  if (object == "/") return true;
  // Check each path component: H5Lexists fails on a missing intermediate group.
  std::size_t start = 1;
  while (true) {
    const std::size_t slash = object.find('/', start);
    const std::string prefix = object.substr(0, slash);
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

template <class T>
void H5File::write(const std::string& dataset, const T* data, const std::vector<std::uint64_t>& shape) {
  auto lock = enter_hdf5();
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  create_parents(id_, dataset);
  Handle dcpl = dataset_properties();
  Handle set(H5Dcreate2(id_, dataset.c_str(), native_type<T>(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
             H5Dclose);
  if (!set.ok()) fail(path_, dataset, "cannot create the dataset");
  std::uint64_t count = 1;
  for (auto d : shape) count *= d;
  if (count > 0 && H5Dwrite(set.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail(path_, dataset, "write failed (disk full?)");
}

template <class T>
std::vector<T> H5File::read(const std::string& dataset, std::vector<std::uint64_t>* shape) const {
  auto lock = enter_hdf5();
  Handle set(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!set.ok()) fail(path_, dataset, "dataset not found");
  Handle type(H5Dget_type(set.get()), H5Tclose);
  if (H5Tget_class(type.get()) != type_class<T>() || H5Tget_size(type.get()) != sizeof(T))
    fail(path_, dataset, "unexpected element type");
  Handle space(H5Dget_space(set.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8) fail(path_, dataset, "unexpected rank");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::uint64_t count = 1;
  for (auto d : dims) count *= d;
  if (count > (std::uint64_t{1} << 34)) fail(path_, dataset, "implausibly large dataset");
  std::vector<T> out(count);
  if (count > 0 && H5Dread(set.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail(path_, dataset, "read failed (damaged file?)");
  if (shape) shape->assign(dims.begin(), dims.end());
  return out;
}

template void H5File::write<float>(const std::string&, const float*, const std::vector<std::uint64_t>&);
template void H5File::write<double>(const std::string&, const double*, const std::vector<std::uint64_t>&);
template void H5File::write<std::int64_t>(const std::string&, const std::int64_t*, const std::vector<std::uint64_t>&);
template void H5File::write<std::uint8_t>(const std::string&, const std::uint8_t*, const std::vector<std::uint64_t>&);
template std::vector<float> H5File::read<float>(const std::string&, std::vector<std::uint64_t>*) const;
template std::vector<double> H5File::read<double>(const std::string&, std::vector<std::uint64_t>*) const;
template std::vector<std::int64_t> H5File::read<std::int64_t>(const std::string&, std::vector<std::uint64_t>*) const;
template std::vector<std::uint8_t> H5File::read<std::uint8_t>(const std::string&, std::vector<std::uint64_t>*) const;

namespace {
template <class T>
void write_attribute(hid_t file, const std::string& path, const std::string& object, const std::string& name,
                     hid_t type, const T* value) {
  Handle target = open_object(file, path, object);
  if (H5Aexists(target.get(), name.c_str()) > 0) H5Adelete(target.get(), name.c_str());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(target.get(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), type, value) < 0) fail(path, object + "@" + name, "cannot write attribute");
}

Handle open_attribute(hid_t file, const std::string& path, const std::string& object, const std::string& name) {
  Handle target = open_object(file, path, object);
  Handle attr(H5Aopen(target.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) fail(path, object + "@" + name, "attribute not found");
  return attr;
}

template <class T>
T read_numeric_attribute(hid_t file, const std::string& path, const std::string& object, const std::string& name,
                         hid_t type) {
  Handle attr = open_attribute(file, path, object, name);
  Handle file_type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(file_type.get()) != type_class<T>()) fail(path, object + "@" + name, "unexpected attribute type");
  T value{};
  if (H5Aread(attr.get(), type, &value) < 0) fail(path, object + "@" + name, "cannot read attribute");
  return value;
}
}  // namespace

void H5File::set_attribute(const std::string& object, const std::string& name, double value) {
  auto lock = enter_hdf5();
  write_attribute(id_, path_, object, name, H5T_NATIVE_DOUBLE, &value);
}

void H5File::set_attribute(const std::string& object, const std::string& name, std::int64_t value) {
  auto lock = enter_hdf5();
  write_attribute(id_, path_, object, name, H5T_NATIVE_INT64, &value);
}

void H5File::set_attribute(const std::string& object, const std::string& name, const std::string& value) {
  auto lock = enter_hdf5();
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const char* text = value.c_str();
  write_attribute(id_, path_, object, name, type.get(), &text);
}

double H5File::attribute_double(const std::string& object, const std::string& name) const {
  auto lock = enter_hdf5();
  return read_numeric_attribute<double>(id_, path_, object, name, H5T_NATIVE_DOUBLE);
}

std::int64_t H5File::attribute_int(const std::string& object, const std::string& name) const {
  auto lock = enter_hdf5();
  return read_numeric_attribute<std::int64_t>(id_, path_, object, name, H5T_NATIVE_INT64);
}

std::string H5File::attribute_string(const std::string& object, const std::string& name) const {
  auto lock = enter_hdf5();
  Handle attr = open_attribute(id_, path_, object, name);
  Handle file_type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(file_type.get()) != H5T_STRING || !H5Tis_variable_str(file_type.get()))
    fail(path_, object + "@" + name, "unexpected attribute type");
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  char* text = nullptr;
  if (H5Aread(attr.get(), type.get(), &text) < 0 || !text) fail(path_, object + "@" + name, "cannot read attribute");
  std::string value = text;
  H5free_memory(text);
  return value;
}

}  // namespace rguard
