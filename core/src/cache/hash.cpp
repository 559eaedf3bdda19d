#include "rguard/hash.hpp"

#include <xxhash.h>

#include <cstring>
#include <fstream>
#include <new>
#include <vector>

namespace rguard {

namespace {
// splitmix64's finaliser (Steele, Lea & Flood 2014): a bijective mixer with full avalanche.
std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The state comes from the library (XXH3_createState), not from a struct on the stack: its
// layout is only stable for static linking (xxhash.h, XXH_STATIC_LINKING_ONLY), and this
// links Debian's shared libxxhash.
XXH3_state_t* new_state() {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  return state;
}

// A seeded reset keeps the secret it finds when the state's seed field already holds that
// seed; the plain reset first sets the field (to 0), so the secret is always derived.
void reset(XXH3_state_t* state, std::uint64_t seed) {
  XXH3_128bits_reset(state);
  XXH3_128bits_reset_withSeed(state, seed);
}

std::string canonical_hex(XXH128_hash_t hash) {
  // The canonical form (big-endian, high half first) is what xxhsum -H2 and xxHash's
  // bindings print, so a key can be checked with either.
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  static const char* digits = "0123456789abcdef";
  std::string out(2 * sizeof canonical.digest, '0');
  for (std::size_t i = 0; i < sizeof canonical.digest; ++i) {
    out[2 * i] = digits[canonical.digest[i] >> 4];
    out[2 * i + 1] = digits[canonical.digest[i] & 15];
  }
  return out;
}
}  // namespace

void Hasher::FreeState::operator()(XXH3_state_s* state) const { XXH3_freeState(state); }

Hasher::Hasher(std::uint64_t seed) : state_(seed), xxh_(new_state()) { reset(xxh_.get(), seed); }

Hasher::Hasher(const Hasher& other) : state_(other.state_), length_(other.length_), xxh_(new_state()) {
  XXH3_copyState(xxh_.get(), other.xxh_.get());
}

Hasher& Hasher::operator=(const Hasher& other) {
  if (this != &other) {
    state_ = other.state_;
    length_ = other.length_;
    if (!xxh_) xxh_.reset(new_state());
    XXH3_copyState(xxh_.get(), other.xxh_.get());
  }
  return *this;
}

Hasher::~Hasher() = default;

Hasher& Hasher::bytes(const void* data, std::size_t size) {
  if (size == 0) return *this;  // data may be null then
  XXH3_128bits_update(xxh_.get(), data, size);
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

std::string Hasher::hex() const { return canonical_hex(XXH3_128bits_digest(xxh_.get())); }

std::string to_hex(std::uint64_t value) {
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) out[static_cast<std::size_t>(i)] = digits[value & 15];
  return out;
}

std::optional<std::string> hash_file(const std::string& path, std::uint64_t seed) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  // XXH3 alone: a file's hash is an identity, never a seed, and the mixer (one multiply
  // chain per 8 bytes) is slower than XXH3 itself.
  const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(new_state(), &XXH3_freeState);
  reset(state.get(), seed);
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    XXH3_128bits_update(state.get(), buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) return std::nullopt;  // a read error, not the end of the file
  return canonical_hex(XXH3_128bits_digest(state.get()));
}

std::uint64_t derive_seed(std::uint64_t seed, std::string_view purpose) {
  return Hasher(seed).text(purpose).digest();
}

}  // namespace rguard
