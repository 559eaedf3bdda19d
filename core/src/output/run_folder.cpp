#include "output/run_folder.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <stdio.h>  // renameat2 (glibc >= 2.28)
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "rguard/error.hpp"
#include "rguard/hash.hpp"

namespace rguard::run_folder {

namespace fs = std::filesystem;

namespace {

// Host names can be 64 bytes: the folders' names carry 8 hex digits of one instead, so
// that a 200-byte run name still makes a file name (255 bytes at most).
std::string host_tag() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return Hasher().text(name).hex().substr(0, 8);
}

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(fs::symlink_status(path, ec));
}

bool is_folder(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(path, ec));
}

// What `rguard run` writes into a run folder (docs/outputs.md).
bool run_output_name(const std::string& name) {
  static const char* const fixed[] = {"resolved.yaml", "manifest.json", "summary.md", "certificates.csv",
                                      "metrics.csv",   "attacks.csv",   "certificates.h5"};
  for (const char* f : fixed)
    if (name == f) return true;
  return name.rfind("certify-", 0) == 0 && name.size() > 12 && name.compare(name.size() - 4, 4, ".tsv") == 0;
}

// What `rguard report` writes into its folder (default <run>/report).
bool report_output_name(const std::string& name) {
  static const char* const extensions[] = {".html", ".md", ".csv", ".tex", ".png", ".svg", ".dat", ".gp", ".log"};
  const std::string ext = fs::path(name).extension().string();
  for (const char* e : extensions)
    if (ext == e) return true;
  return false;
}

// The first entry of `dir` that is not a regular file `allowed` accepts, or "".
template <class Allowed>
std::string foreign_entry(const fs::path& dir, Allowed allowed) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!allowed(name, it->path())) return name;
  }
  return ec ? fmt::format("(unreadable: {})", ec.message()) : "";
}

std::string manifest_problem(const fs::path& file, nlohmann::json& manifest) {
  if (!is_file(file)) return "it has no manifest.json";
  std::error_code ec;
  if (fs::file_size(file, ec) > (64u << 20)) return "its manifest.json is larger than rguard writes";
  std::ifstream in(file, std::ios::binary);
  manifest = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || !manifest.contains("rguard_version") || !manifest["rguard_version"].is_string() ||
      !manifest.contains("files") || !manifest["files"].is_object())
    return "its manifest.json is not one rguard wrote";
  return "";
}

bool process_gone(long pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

// "<hex8>-<pid>" (old) or "<hex8>-<pid>-<6 characters>" (partial): the owner, or pid 0.
long owner_pid(const std::string& rest, const std::string& host, bool partial) {
  if (rest.size() < 10 || rest.compare(0, 8, host) != 0 || rest[8] != '-') return 0;
  std::string digits = rest.substr(9);
  if (partial) {
    if (digits.size() < 8 || digits[digits.size() - 7] != '-') return 0;
    digits.resize(digits.size() - 7);
  }
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::stol(digits);
}

void warn(const std::string& text) { std::cerr << "warning: " << text << "\n"; }

void rename_or_throw(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec)
    throw Error(fmt::format("cannot move {} to {}: {}", from.string(), to.string(), ec.message()));
}

}  // namespace

std::string not_replaceable(const fs::path& dir) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(dir, ec);
  if (!fs::exists(status)) return "";
  if (fs::is_symlink(status)) return "it is a symbolic link";
  if (!fs::is_directory(status)) return "it is not a folder";
  nlohmann::json manifest;
  if (std::string problem = manifest_problem(dir / "manifest.json", manifest); !problem.empty()) return problem;
  const auto& files = manifest["files"];
  const std::string foreign = foreign_entry(dir, [&](const std::string& name, const fs::path& path) {
    if (name == "manifest.json" || (files.contains(name) && is_file(path))) return true;
    return name == "report" && is_folder(path) &&
           foreign_entry(path, [](const std::string& n, const fs::path& p) { return report_output_name(n) && is_file(p); })
               .empty();
  });
  if (!foreign.empty()) return fmt::format("it holds '{}', which rguard did not write there", foreign);
  return "";
}

fs::path moved_aside(const fs::path& root, const std::string& name, long pid) {
  return root / fmt::format(".{}.old-{}-{}", name, host_tag(), pid);
}

namespace {
// The process's umask, read without changing it (umask(2) can only be read by setting it,
// which would race with the threads creating files): Linux's /proc/self/status "Umask:".
mode_t current_umask() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8));
  return 022;
}
}  // namespace

fs::path make_staging(const fs::path& root, const std::string& name) {
  std::error_code ec;
  fs::create_directories(root, ec);
  std::string pattern = (root / fmt::format(".{}.partial-{}-{}-XXXXXX", name, host_tag(), ::getpid())).string();
  if (!::mkdtemp(pattern.data()))
    throw Error(fmt::format("{}: cannot create the run's staging folder there: {} (set output to a folder you can write)",
                            root.string(), std::strerror(errno)));
  // mkdtemp makes it 0700; the run folder it becomes gets what mkdir would give it.
  ::chmod(pattern.c_str(), 0777 & ~current_umask());
  return pattern;
}

void recover(const fs::path& root, const std::string& name) {
  const fs::path final_dir = root / name;
  const std::string host = host_tag();
  const std::string old_prefix = "." + name + ".old-", partial_prefix = "." + name + ".partial-";
  std::vector<fs::path> old, partial;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    if (entry.rfind(old_prefix, 0) == 0 && owner_pid(entry.substr(old_prefix.size()), host, false) > 0)
      old.push_back(it->path());
    else if (entry.rfind(partial_prefix, 0) == 0 && process_gone(owner_pid(entry.substr(partial_prefix.size()), host, true)))
      partial.push_back(it->path());
  }
  // With the lock held no swap is under way: a moved-aside run is what an interrupted swap
  // left. The run folder gets it back unless a newer run took its place.
  for (const fs::path& dir : old) {
    if (const std::string why = not_replaceable(dir); !why.empty()) {
      warn(fmt::format("{}: left as it is: {}", dir.string(), why));
      continue;
    }
    if (!fs::exists(fs::symlink_status(final_dir, ec))) {
      rename_or_throw(dir, final_dir);
      warn(fmt::format("{}: restored the last finished run, which an interrupted run had moved to {}", final_dir.string(),
                       dir.string()));
      continue;
    }
    fs::remove_all(dir, ec);
  }
  for (const fs::path& dir : partial) {
    const bool ours = is_folder(dir) && (not_replaceable(dir).empty() ||
                                         foreign_entry(dir, [](const std::string& n, const fs::path& p) {
                                           return run_output_name(n) && is_file(p);
                                         }).empty());
    if (!ours) {
      warn(fmt::format("{}: left as it is: it holds files rguard does not write there", dir.string()));
      continue;
    }
    fs::remove_all(dir, ec);
  }
}

void swap_in(const fs::path& staging, const fs::path& root, const std::string& name) {
  const fs::path final_dir = root / name;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(final_dir, ec))) {
    rename_or_throw(staging, final_dir);
    return;
  }
  if (const std::string why = not_replaceable(final_dir); !why.empty()) {
    const fs::path kept = root / fmt::format("{}.new-{}", name, ::getpid());
    rename_or_throw(staging, kept);
    throw Error(fmt::format("{}: not replaced: {}, and rguard replaces only run folders it wrote; this run's outputs are "
                            "in {}",
                            final_dir.string(), why, kept.string()));
  }
  // One step: the run folder is never missing, whenever this process is stopped.
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(staging, ec);  // now the previous run
    return;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    throw Error(fmt::format("cannot move {} into place as {}: {}", staging.string(), final_dir.string(),
                            std::strerror(errno)));
  // File systems without the exchange: two renames; recover() puts the old run back if
  // this process stops between them.
  const fs::path old = moved_aside(root, name, ::getpid());
  rename_or_throw(final_dir, old);
  rename_or_throw(staging, final_dir);
  fs::remove_all(old, ec);
}

}  // namespace rguard::run_folder
