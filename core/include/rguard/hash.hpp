// Content hashing for cache keys, checksums and data fingerprints (XXH3-128, Debian's
// libxxhash), and the 64-bit mixer every random seed is derived from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct XXH3_state_s;  // xxhash.h stays out of this public header: plugins need not find it

namespace rguard {

// One pass over the input feeds two digests, because they serve different ends:
//  * hex(): XXH3-128 (xxHash 0.8, seeded with the constructor's seed), 32 hex digits. The
//    identity of content: cache keys, checksums, fingerprints. 128 bits, so that two inputs
//    sharing a key (a cache entry read for the wrong computation) stay out of reach: about
//    2^-65 among 2^32 keys, where a 64-bit key gives 1/2.
//  * digest(): a 64-bit mixer (splitmix64's finaliser per 8-byte word). Every random stream
//    (noise, query order, training, attacks) is seeded through it, so it is kept bit for bit:
//    changing it would change every sample and so every certificate. Not for identities.
class Hasher {
 public:
  explicit Hasher(std::uint64_t seed = 0x9e3779b97f4a7c15ULL);
  Hasher(const Hasher& other);
  Hasher& operator=(const Hasher& other);
  Hasher(Hasher&&) noexcept = default;
  Hasher& operator=(Hasher&&) noexcept = default;
  ~Hasher();

  Hasher& bytes(const void* data, std::size_t size);
  Hasher& text(std::string_view s);  // length-prefixed, so ("ab","c") != ("a","bc")
  Hasher& u64(std::uint64_t v);
  std::uint64_t digest() const;  // the seed mixer (above)
  std::string hex() const;       // XXH3-128: 32 hex digits, most significant first

 private:
  struct FreeState {
    void operator()(XXH3_state_s* state) const;
  };
  std::uint64_t state_;
  std::uint64_t length_ = 0;
  std::unique_ptr<XXH3_state_s, FreeState> xxh_;
};

// The name of hex()'s algorithm, recorded beside file hashes (a run folder's manifest.json)
// so that a reader tells a hash of another algorithm from a changed file.
inline constexpr const char* kContentHash = "xxh3-128";

std::string to_hex(std::uint64_t value);  // 16 hex digits
// XXH3-128 of a file's bytes with this seed (what Hasher(seed).bytes(<the bytes>).hex()
// gives), 32 hex digits; nullopt when it cannot be opened or read.
std::optional<std::string> hash_file(const std::string& path, std::uint64_t seed = 0x9e3779b97f4a7c15ULL);
// A seed for one purpose ("noise", "train", ...) derived from the run's seed, by digest().
std::uint64_t derive_seed(std::uint64_t seed, std::string_view purpose);

}  // namespace rguard
