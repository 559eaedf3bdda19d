#include "cache/cache_admin.hpp"

#include <fmt/format.h>
#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cache/cache.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"

namespace rguard {

namespace fs = std::filesystem;

namespace {

// (stage/key) -> names of the runs that used it, from <root>/uses/*.json.
std::map<std::string, std::vector<std::string>> read_uses(const fs::path& root) {
  std::map<std::string, std::vector<std::string>> users;
  std::error_code ec;
  if (!fs::is_directory(root / "uses", ec)) return users;
  for (const auto& item : fs::directory_iterator(root / "uses", ec)) {
    if (item.path().extension() != ".json") continue;
    try {
      std::ifstream in(item.path());
      const auto use = nlohmann::json::parse(in);
      for (const auto& entry : use.at("entries"))
        users[entry.at("stage").get<std::string>() + "/" + entry.at("key").get<std::string>()].push_back(
            use.at("name").get<std::string>());
    } catch (const std::exception& e) {
      throw Error(fmt::format("{}: damaged cache use record ({}); delete it and rerun the pipeline", item.path().string(),
                              e.what()));
    }
  }
  return users;
}

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// "<key>.h5.tmp.<pid>.<n>" -> pid, or -1.
long temporary_owner(const std::string& name) {
  const auto at = name.find(".tmp.");
  if (at == std::string::npos) return -1;
  try {
    return std::stol(name.substr(at + 5));
  } catch (...) {
    return -1;
  }
}

// The stage folders of a cache, after checking that `root` is one: a cache folder holds
// rguard's stage folders or its `uses/` record, and nothing is ever read or removed
// outside them (a mistyped --cache must not touch someone's files).
std::vector<fs::path> stage_folders(const std::string& root_text) {
  const fs::path root = root_text;
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw Error(fmt::format("{}: no cache folder here (run a pipeline first, or pass --cache DIR)", root_text));
  if (!fs::is_directory(root, ec)) throw Error(fmt::format("{}: is not a folder; --cache names a cache folder", root_text));
  std::vector<fs::path> stages;
  for (const char* stage : kCacheStages)
    if (fs::is_directory(root / stage, ec)) stages.push_back(root / stage);
  if (stages.empty() && !fs::is_directory(root / "uses", ec))
    throw Error(fmt::format("{}: not an rguard cache (it has none of the folders {}, uses); check --cache", root_text,
                            fmt::join(kCacheStages, ", ")));
  return stages;
}

// An entry rguard wrote has its checksum beside it.
bool is_entry(const fs::path& file) {
  std::error_code ec;
  return file.extension() == ".h5" && fs::is_regular_file(fs::path(file).replace_extension(".sum"), ec);
}

// Keys of this cache format are Hasher::hex() digests (Cache::kFormat 2: 32 hex digits);
// format 1's were 16. An entry under any other name was written by an older rguard.
bool current_key(const std::string& key) {
  static const std::size_t length = Hasher().hex().size();
  return key.size() == length && key.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

std::vector<CacheEntryInfo> list_cache(const std::string& root_text) {
  std::error_code ec;
  const auto stages = stage_folders(root_text);
  const auto users = read_uses(root_text);
  std::vector<CacheEntryInfo> out;
  for (const auto& stage : stages) {
    for (const auto& item : fs::directory_iterator(stage)) {
      if (!is_entry(item.path())) continue;
      CacheEntryInfo info;
      info.stage = stage.filename().string();
      info.key = item.path().stem().string();
      info.path = item.path().string();
      info.bytes = item.file_size(ec);
      info.older_format = !current_key(info.key);
      if (auto it = users.find(info.stage + "/" + info.key); it != users.end()) info.used_by = it->second;
      out.push_back(std::move(info));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return std::tie(a.stage, a.key) < std::tie(b.stage, b.key); });
  return out;
}

GcReport collect_garbage(const std::string& root_text, bool dry_run) {
  std::error_code ec;
  const auto stages = stage_folders(root_text);
  const auto users = read_uses(root_text);
  GcReport report;
  auto remove = [&](const fs::path& path) {
    report.bytes += fs::file_size(path, ec);
    report.removed.push_back(path.string());
    if (!dry_run) fs::remove(path, ec);
  };
  for (const auto& stage : stages) {
    for (const auto& item : fs::directory_iterator(stage)) {
      const std::string name = item.path().filename().string();
      const std::string key = name.substr(0, name.find('.'));
      if (is_entry(item.path())) {
        if (!current_key(key) || !users.count(stage.filename().string() + "/" + key)) {
          remove(item.path());
          remove(fs::path(item.path()).replace_extension(".sum"));  // the checksum goes with its entry
        }
      } else if (item.path().extension() == ".corrupt") {
        remove(item.path());
      } else if (const long pid = temporary_owner(name); pid >= 0) {
        if (!process_alive(pid)) remove(item.path());
      }  // lock files stay: removing one under a waiting run would split the lock
    }
  }
  return report;
}

MergeReport merge_caches(const std::vector<std::string>& sources, const std::string& destination) {
  std::error_code ec;
  if (fs::exists(destination, ec) && !fs::is_directory(destination, ec))
    throw Error(fmt::format("{}: is not a folder; --cache names the cache folder to merge into", destination));
  const Cache into(destination);
  MergeReport report;
  for (const auto& source : sources) {
    std::error_code ec;
    if (fs::equivalent(source, destination, ec)) continue;
    const Cache from(source);
    for (const auto& entry : list_cache(source)) {
      if (entry.older_format) {  // no key of this rguard: not copied, and not set aside as damaged
        ++report.older;
        continue;
      }
      fs::create_directories(fs::path(destination) / entry.stage);
      if (CacheLock lock = into.lock(entry.stage, entry.key); into.open(entry.stage, entry.key)) {
        ++report.present;
      } else if (from.open(entry.stage, entry.key)) {  // checksum and format checked
        into.adopt(entry.stage, entry.key, from);
        ++report.copied;
      } else {
        ++report.damaged;
      }
    }
  }
  return report;
}

}  // namespace rguard
