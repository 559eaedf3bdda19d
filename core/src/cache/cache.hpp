// The stage cache: one HDF5 file per (stage, key) under the cache root, where the key
// hashes everything upstream of the stage. A file is published by writing a temporary
// file in the same folder and renaming it into place, so a crash never leaves a file a
// later run would take as valid; a file that fails its checks is moved aside, not read.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "io/h5io.hpp"

namespace rguard {

// An exclusive advisory lock (flock) on one cache entry, held while it is computed so that
// a second process sharing the cache waits and then reuses the entry instead of computing
// it twice. The kernel releases it when the process dies, kill -9 included.
class CacheLock {
 public:
  CacheLock() = default;
  explicit CacheLock(const std::string& path);  // blocks until the lock is held
  CacheLock(CacheLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  CacheLock& operator=(CacheLock&& other) noexcept;
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;
  ~CacheLock();
  // Takes the lock only if it is free; an empty lock otherwise.
  static CacheLock try_lock(const std::string& path);
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// The stage folders a cache holds (beside `uses/`, the record of which run used what).
inline constexpr const char* kCacheStages[] = {"dataset",    "backbone", "checkpoint", "denoiser", "denoiser-checkpoint",
                                               "embeddings", "samples",  "audit"};

class Cache {
 public:
  // 2: keys and checksums are XXH3-128 (32 hex digits). No format-1 entry is read: its name
  // (a 16-digit key) is no key any more, and one met anyway (cache merge) fails its checksum,
  // then this, and is set aside.
  static constexpr std::int64_t kFormat = 2;

  explicit Cache(std::string root);
  const std::string& root() const { return root_; }
  std::string path(const std::string& stage, const std::string& key) const;

  // The entry opened for reading, or nullopt when absent. A damaged entry (not HDF5,
  // wrong format, key or stage) is renamed to *.corrupt with a warning and reads as absent.
  std::optional<H5File> open(const std::string& stage, const std::string& key) const;

  CacheLock lock(const std::string& stage, const std::string& key) const;

  // Writes the entry through `fill`, then stamps and publishes it atomically.
  void publish(const std::string& stage, const std::string& key, const std::function<void(H5File&)>& fill) const;

  // Publishes a copy of another cache's entry (file and checksum), atomically; the caller
  // has checked it with that cache's open().
  void adopt(const std::string& stage, const std::string& key, const Cache& source) const;

 private:
  std::string root_;
};

}  // namespace rguard
