// `rguard cache ls` and `rguard cache gc`: what the cache holds, which runs use it, and
// removing what none uses. Each run records the entries it used in <cache>/uses/<name>.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rguard {

struct CacheEntryInfo {
  std::string stage, key, path;
  std::uintmax_t bytes = 0;
  std::vector<std::string> used_by;  // run names whose last run used it
  bool older_format = false;          // keyed as an older rguard keyed entries: never read now
};

std::vector<CacheEntryInfo> list_cache(const std::string& root);

struct GcReport {
  std::vector<std::string> removed;  // paths
  std::uintmax_t bytes = 0;
};

// Removes entries no recorded run uses, entries of an older rguard's format (their keys are
// no keys of this one, so no run reads them again), damaged entries (*.corrupt) and temporary
// files of processes that are gone. With dry_run, only reports.
GcReport collect_garbage(const std::string& root, bool dry_run);

struct MergeReport {
  std::int64_t copied = 0, present = 0, damaged = 0, older = 0;  // older: another format's, left where it is
};

// Copies into `destination` every valid entry of the `sources` caches it lacks (shards
// run with separate caches, then one run reuses them all). Entries it has are kept.
MergeReport merge_caches(const std::vector<std::string>& sources, const std::string& destination);

}  // namespace rguard
