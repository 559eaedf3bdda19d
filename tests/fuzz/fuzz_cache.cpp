// Fuzz target: a cache entry as a run meets it. The input's first 32 bytes (an XXH3-128
// checksum's hex digits) become the checksum file, the rest the entry; the reader must
// answer "absent" (and set the file aside) or return a valid entry, never crash. Reads
// what the executor reads.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "cache/cache.hpp"
#include "rguard/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const fs::path root = fs::temp_directory_path() / ("rguard_fuzz_cache_" + std::to_string(::getpid()));
  const std::string key = "00000000000000aa";
  fs::create_directories(root / "samples");
  const std::size_t split = size < 32 ? size : 32;
  std::ofstream(root / "samples" / (key + ".sum"), std::ios::binary)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(split));
  std::ofstream(root / "samples" / (key + ".h5"), std::ios::binary)
      .write(reinterpret_cast<const char*>(data + split), static_cast<std::streamsize>(size - split));
  try {
    rguard::Cache cache(root.string());
    if (auto entry = cache.open("samples", key)) {
      std::vector<std::uint64_t> shape;
      entry->read<std::int64_t>("/query_id");
      entry->read<double>("/sum", &shape);
      entry->attribute_int("/", "n");
      entry->attribute_double("/", "seconds");
    }
  } catch (const rguard::Error&) {
  }
  std::error_code ec;
  fs::remove(root / "samples" / (key + ".h5.corrupt"), ec);
  return 0;
}
