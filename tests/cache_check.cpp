#include "cache_check.hpp"

#include "prelude.hpp"

#include <string>
#include <vector>

#include "cache/cache.hpp"

namespace fs = std::filesystem;

std::size_t intact_cache_entries(const fs::path& root, const fs::path& cache) {
  std::vector<fs::path> entries;
  for (const auto& item : fs::recursive_directory_iterator(root)) {
    const std::string name = item.path().filename().string();
    INFO(item.path().string());
    CHECK(name.find(".tmp.") == std::string::npos);
    CHECK(name.find(".partial") == std::string::npos);
    CHECK(item.path().extension() != ".corrupt");
    if (item.path().extension() == ".h5" && item.path().parent_path().parent_path() == cache) entries.push_back(item.path());
  }
  const rguard::Cache opened(cache.string());
  for (const auto& entry : entries) {
    INFO(entry.string());
    CHECK(opened.open(entry.parent_path().filename().string(), entry.stem().string()).has_value());
  }
  return entries.size();
}

