#include "rguard/cache.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>

#include "rguard/error.hpp"

namespace rguard {

namespace fs = std::filesystem;

namespace {
void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

Cache::Cache(std::string root) : root_(std::move(root)) {}

std::string Cache::path(const std::string& stage, const std::string& key) const {
  return (fs::path(root_) / stage / (key + ".h5")).string();
}

std::optional<H5File> Cache::open(const std::string& stage, const std::string& key) const {
  const std::string file = path(stage, key);
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  try {
    H5File h5 = H5File::open_read(file);
    if (h5.attribute_int("/", "rguard_cache_format") != kFormat || h5.attribute_string("/", "stage") != stage ||
        h5.attribute_string("/", "key") != key)
      throw Error(fmt::format("{}: cache entry does not match its name or format", file));
    return h5;
  } catch (const Error& e) {
    const std::string aside = file + ".corrupt";
    fs::rename(file, aside, ec);
    std::cerr << fmt::format("warning: ignoring a damaged cache entry ({}); moved to {}\n", e.what(), aside);
    return std::nullopt;
  }
}

void Cache::publish(const std::string& stage, const std::string& key,
                    const std::function<void(H5File&)>& fill) const {
  static std::atomic<int> counter{0};
  const std::string file = path(stage, key);
  fs::create_directories(fs::path(file).parent_path());
  const std::string temporary = fmt::format("{}.tmp.{}.{}", file, ::getpid(), counter++);
  try {
    {
      H5File h5 = H5File::create(temporary);
      fill(h5);
      h5.set_attribute("/", "stage", stage);
      h5.set_attribute("/", "key", key);
      h5.set_attribute("/", "rguard_cache_format", kFormat);
      h5.close();
    }
    fsync_path(temporary);
    fs::rename(temporary, file);  // atomic within one file system
    fsync_path(fs::path(file).parent_path().string());
  } catch (...) {
    std::error_code ec;
    fs::remove(temporary, ec);
    throw;
  }
}

}  // namespace rguard
