// The stage cache: one HDF5 file per (stage, key) under the cache root, where the key
// hashes everything upstream of the stage. A file is published by writing a temporary
// file in the same folder and renaming it into place, so a crash never leaves a file a
// later run would take as valid; a file that fails its checks is moved aside, not read.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "rguard/h5io.hpp"

namespace rguard {

class Cache {
 public:
  static constexpr std::int64_t kFormat = 1;

  explicit Cache(std::string root);
  const std::string& root() const { return root_; }
  std::string path(const std::string& stage, const std::string& key) const;

  // The entry opened for reading, or nullopt when absent. A damaged entry (not HDF5,
  // wrong format, key or stage) is renamed to *.corrupt with a warning and reads as absent.
  std::optional<H5File> open(const std::string& stage, const std::string& key) const;

  // Writes the entry through `fill`, then stamps and publishes it atomically.
  void publish(const std::string& stage, const std::string& key, const std::function<void(H5File&)>& fill) const;

 private:
  std::string root_;
};

}  // namespace rguard
