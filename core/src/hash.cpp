#include "rguard/hash.hpp"

#include <cstring>
#include <fstream>
#include <vector>

namespace rguard {

namespace {
// splitmix64's finaliser: a bijective mixer with full avalanche.
std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

Hasher& Hasher::bytes(const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, p + i, 8);
    state_ = mix(state_ ^ word) + 0x9e3779b97f4a7c15ULL;
  }
  if (i < size) {
    std::uint64_t word = 0;
    std::memcpy(&word, p + i, size - i);
    state_ = mix(state_ ^ word ^ (static_cast<std::uint64_t>(size - i) << 56)) + 1;
  }
  length_ += size;
  return *this;
}

Hasher& Hasher::text(std::string_view s) {
  u64(s.size());
  return bytes(s.data(), s.size());
}

Hasher& Hasher::u64(std::uint64_t v) { return bytes(&v, sizeof v); }

std::uint64_t Hasher::digest() const { return mix(state_ ^ mix(length_)); }

std::string Hasher::hex() const { return to_hex(digest()); }

std::string to_hex(std::uint64_t value) {
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) out[static_cast<std::size_t>(i)] = digits[value & 15];
  return out;
}

std::optional<std::string> hash_file(const std::string& path, std::uint64_t seed) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  Hasher h(seed);
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    h.bytes(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  return h.hex();
}

std::uint64_t derive_seed(std::uint64_t seed, std::string_view purpose) {
  return Hasher(seed).text(purpose).digest();
}

}  // namespace rguard
