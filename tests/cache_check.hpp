// A check shared by the fault tests: after a failure, the cache and output folders hold
// nothing half-written and every cache entry is whole.
#pragma once

#include <cstddef>
#include <filesystem>

// Checks (doctest CHECKs) that no temporary, partial or set-aside file is left under
// `root` and that every entry of the cache at `cache` opens and matches its checksum;
// returns how many entries there are.
std::size_t intact_cache_entries(const std::filesystem::path& root, const std::filesystem::path& cache);

