#include "rguard/destination.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "rguard/error.hpp"

namespace rguard {

namespace fs = std::filesystem;

namespace {

// `path` will be a folder the run creates files in: it is one, or the nearest part of it
// that exists is a folder this process can create files in (tried with a file that is
// removed at once).
void check_folder(const std::string& file, const fs::path& path, const std::string& what, const std::string& key) {
  std::error_code ec;
  fs::path existing = path.empty() ? fs::path(".") : path;
  while (!fs::exists(fs::symlink_status(existing, ec)) && existing.has_parent_path() && existing != existing.parent_path())
    existing = existing.parent_path();
  if (!fs::exists(existing, ec)) existing = ".";
  if (!fs::is_directory(existing, ec))
    throw Error(fmt::format("{}: {}: {} '{}' cannot be created: '{}' is not a folder; set {} to a folder", file, key,
                            what, path.string(), existing.string(), key));
  std::string probe = (existing / ".rguard-write-test-XXXXXX").string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0)
    throw Error(fmt::format("{}: {}: {} '{}' is not writable: cannot create a file in '{}' ({}); set {} to a folder "
                            "you can write",
                            file, key, what, path.string(), existing.string(), std::strerror(errno), key));
  ::close(fd);
  ::unlink(probe.c_str());
}

// An existing path that must be of one kind (a previous run's output, a record).
void check_kind(const fs::path& path, bool folder, const std::string& what) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  if (!fs::exists(status)) return;
  const fs::file_status target = fs::status(path, ec);
  if (folder ? fs::is_directory(target) : fs::is_regular_file(target)) return;
  throw Error(fmt::format("{}: {} is in the way: expected a {}, found {}; move or remove it and run again",
                          path.string(), what, folder ? "folder" : "file",
                          fs::is_directory(target) ? "a folder" : fs::is_regular_file(target) ? "a file" : "something else"));
}

}  // namespace

void check_destinations(const ExperimentSpec& spec, bool outputs) {
  if (outputs) {
    check_folder(spec.file, spec.output_root, "the output root", "output");
    check_kind(fs::path(spec.output_root) / spec.name, true, "the run folder");
  }
  check_folder(spec.file, spec.cache_root, "the cache folder", "cache");
  if (outputs) check_kind(fs::path(spec.cache_root) / "uses" / (spec.name + ".json"), false, "the cache's record of this run");
}

}  // namespace rguard
