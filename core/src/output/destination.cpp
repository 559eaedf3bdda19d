#include "output/destination.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "rguard/error.hpp"
#include "output/run_folder.hpp"

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

// `inner` is `outer` or lies below it (compared as absolute paths with links resolved).
bool within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(fs::absolute(inner, ec), ec), b = fs::weakly_canonical(fs::absolute(outer, ec), ec);
  auto ai = a.begin();
  for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
    if (bi->empty()) continue;  // a trailing separator
    if (ai == a.end() || *ai != *bi) return false;
  }
  return true;
}

}  // namespace

void check_destinations(const ExperimentSpec& spec, bool outputs) {
  if (outputs) {
    const fs::path run = fs::path(spec.output_root) / spec.name;
    check_folder(spec.file, spec.output_root, "the output root", "output");
    if (const std::string why = run_folder::not_replaceable(run); !why.empty())
      throw Error(fmt::format("{}: name: the run folder {} exists and {}; rguard replaces only run folders it wrote. Move "
                              "it away, or give the run another name (name: in the spec, or --set name=...)",
                              spec.file, run.string(), why));
    if (within(spec.cache_root, run) || within(run, spec.cache_root))
      throw Error(fmt::format("{}: the run folder {} and the cache folder {} overlap (one is inside the other): a new run "
                              "replaces its run folder whole. Set cache: and output: to separate folders, or give the "
                              "run another name",
                              spec.file, run.string(), spec.cache_root));
  }
  check_folder(spec.file, spec.cache_root, "the cache folder", "cache");
  if (outputs) check_kind(fs::path(spec.cache_root) / "uses" / (spec.name + ".json"), false, "the cache's record of this run");
}

}  // namespace rguard
