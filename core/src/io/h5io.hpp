// A small HDF5 file wrapper (C API underneath). HDF5 serialises calls even in thread-safe
// builds (HighFive #458), so every call here takes one process-wide lock; the executor
// additionally routes all writes through one serial graph node. Failures throw
// rguard::Error naming the file and the object.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rguard {

class H5File {
 public:
  static H5File create(const std::string& path);  // truncates an existing file
  static H5File open_read(const std::string& path);
  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  ~H5File();

  const std::string& path() const { return path_; }
  // Flushes and closes; throws rguard::Error when that fails (a full disk may show only
  // here). The destructor closes too, silently: writers call close() to know.
  void close();
  bool exists(const std::string& object) const;

  // Datasets are created with their parent groups. T: float, double, int64_t, uint8_t.
  template <class T>
  void write(const std::string& dataset, const T* data, const std::vector<std::uint64_t>& shape);
  template <class T>
  void write(const std::string& dataset, const std::vector<T>& data) {
    write(dataset, data.data(), {data.size()});
  }
  template <class T>
  std::vector<T> read(const std::string& dataset, std::vector<std::uint64_t>* shape = nullptr) const;

  // Attributes on a group or dataset ("/" for the file).
  void set_attribute(const std::string& object, const std::string& name, double value);
  void set_attribute(const std::string& object, const std::string& name, std::int64_t value);
  void set_attribute(const std::string& object, const std::string& name, const std::string& value);
  double attribute_double(const std::string& object, const std::string& name) const;
  std::int64_t attribute_int(const std::string& object, const std::string& name) const;
  std::string attribute_string(const std::string& object, const std::string& name) const;

 private:
  H5File(std::string path, std::int64_t id) : path_(std::move(path)), id_(id) {}
  bool release() noexcept;  // flushes and closes; false when either failed
  std::string path_;
  std::int64_t id_ = -1;
};

}  // namespace rguard
