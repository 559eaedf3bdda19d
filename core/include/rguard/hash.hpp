// A 64-bit non-cryptographic content hash for cache keys and data fingerprints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rguard {

class Hasher {
 public:
  explicit Hasher(std::uint64_t seed = 0x9e3779b97f4a7c15ULL) : state_(seed) {}
  Hasher& bytes(const void* data, std::size_t size);
  Hasher& text(std::string_view s);  // length-prefixed, so ("ab","c") != ("a","bc")
  Hasher& u64(std::uint64_t v);
  std::uint64_t digest() const;
  std::string hex() const;  // 16 hex digits

 private:
  std::uint64_t state_;
  std::uint64_t length_ = 0;
};

std::string to_hex(std::uint64_t value);
// Hash of a file's bytes; nullopt when it cannot be opened.
std::optional<std::string> hash_file(const std::string& path, std::uint64_t seed = 0x9e3779b97f4a7c15ULL);
// A seed for one purpose ("noise", "train", ...) derived from the run's seed.
std::uint64_t derive_seed(std::uint64_t seed, std::string_view purpose);

}  // namespace rguard
