#include "cache/cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "rguard/error.hpp"
#include "rguard/hash.hpp"

namespace rguard {

namespace fs = std::filesystem;

namespace {
// Makes a written file durable; a failure (a full disk on file systems that allocate late,
// an I/O error) is an error: the entry must not be published.
void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const bool ok = fd >= 0 && ::fsync(fd) == 0;
  const int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) throw Error(fmt::format("{}: cannot write to disk: {}", path, std::strerror(error)));
}

// Best effort: some file systems cannot fsync a folder, and the rename is done by then.
void fsync_folder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

namespace {
// Lock files are opened without following links: a link planted at a lock's name would
// otherwise have rguard create (or lock) a file wherever it points. Only regular files lock.
int open_lock_file(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd < 0) {
    if (errno == ELOOP)
      throw Error(fmt::format("{}: is a symbolic link where rguard keeps a lock file; remove the link (rguard never "
                              "follows one there) and run again",
                              path));
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("{}: is not a regular file where rguard keeps a lock file; remove it and run again", path));
  }
  return fd;
}
}  // namespace

CacheLock::CacheLock(const std::string& path) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  fd_ = open_lock_file(path, O_CREAT);
  if (fd_ < 0)
    throw Error(fmt::format("{}: cannot create the lock file: {} (is the cache folder writable? is the disk full?)", path,
                            std::strerror(errno)));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      ::close(fd_);
      fd_ = -1;
      throw Error(fmt::format("{}: cannot lock", path));
    }
  }
}

CacheLock CacheLock::try_lock(const std::string& path) {
  CacheLock lock;
  const int fd = open_lock_file(path, 0);
  if (fd < 0) return lock;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return lock;
  }
  lock.fd_ = fd;
  return lock;
}

CacheLock& CacheLock::operator=(CacheLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

CacheLock::~CacheLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

CacheLock Cache::lock(const std::string& stage, const std::string& key) const {
  return CacheLock((fs::path(root_) / stage / (key + ".lock")).string());
}

Cache::Cache(std::string root) : root_(std::move(root)) {}

std::string Cache::path(const std::string& stage, const std::string& key) const {
  return (fs::path(root_) / stage / (key + ".h5")).string();
}

namespace {
// The content checksum kept beside each entry (<key>.sum): a damaged or foreign file is
// rejected before the HDF5 library parses a byte of it.
std::string file_checksum(const std::string& path) {
  auto sum = hash_file(path, 0x5eed);
  if (!sum) throw Error(fmt::format("{}: cannot read", path));
  return *sum;
}

std::string read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text(64, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

std::string checksum_path(const std::string& file) { return file.substr(0, file.size() - 3) + ".sum"; }
}  // namespace

namespace {
// Moves a damaged entry out of the way (and its checksum, when that is not a file a
// publish could replace) and says so; reading it again would fail the same way.
void set_aside(const std::string& file, const std::string& why) {
  std::error_code ec;
  const std::string sum = checksum_path(file);
  if (fs::exists(fs::symlink_status(sum, ec)) && !fs::is_regular_file(fs::symlink_status(sum, ec)))
    fs::rename(sum, sum + ".corrupt", ec);
  const std::string aside = file + ".corrupt";
  fs::rename(file, aside, ec);
  if (!ec) {
    std::cerr << fmt::format("warning: ignoring a damaged cache entry ({}); moved to {}\n", why, aside);
    return;
  }
  std::cerr << fmt::format("warning: ignoring a damaged cache entry ({}); it could not be moved aside ({}): remove it "
                           "by hand\n",
                           why, ec.message());
}

// What is wrong with an entry's file or checksum before a byte is read: only regular files
// are read (a FIFO would block, a device never end, a folder has no content).
std::string unreadable_kind(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) return fs::is_symlink(fs::symlink_status(path, ec)) ? "a link to nothing" : "missing";
  if (fs::is_regular_file(status)) return "";
  return fs::is_directory(status) ? "a folder" : "not a regular file (a FIFO, socket or device)";
}
}  // namespace

std::optional<H5File> Cache::open(const std::string& stage, const std::string& key) const {
  const std::string file = path(stage, key);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) return std::nullopt;
  try {
    for (const std::string& part : {file, checksum_path(file)})
      if (const std::string kind = unreadable_kind(part); !kind.empty())
        throw Error(fmt::format("{}: {}, not a cache file", part, kind));
    if (read_small_file(checksum_path(file)) != file_checksum(file))
      throw Error(fmt::format("{}: content does not match its checksum (damaged, or written by something else)", file));
    H5File h5 = H5File::open_read(file);
    if (h5.attribute_int("/", "rguard_cache_format") != kFormat || h5.attribute_string("/", "stage") != stage ||
        h5.attribute_string("/", "key") != key)
      throw Error(fmt::format("{}: cache entry does not match its name or format", file));
    return h5;
  } catch (const Error& e) {
    set_aside(file, e.what());
    return std::nullopt;
  }
}

namespace {

// Creates an empty file that did not exist (no link followed); false when the name is
// taken, in which case `created_before` (made by this process for the same attempt) is removed.
bool create_new_file(const std::string& path, const std::string& created_before = "") {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  if (errno != EEXIST) throw Error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  if (!created_before.empty()) ::unlink(created_before.c_str());
  return false;
}

void remove_temporaries(const std::string& temporary) {
  if (temporary.empty()) return;
  std::error_code ec;
  fs::remove(temporary, ec);
  fs::remove(temporary + ".sum", ec);
}

// A message without the C++ backtrace LibTorch appends to its own (a stage's writer may
// throw one; this file stays free of LibTorch's headers, so it cuts at LibTorch's marker).
std::string without_backtrace(std::string message) {
  if (const auto at = message.find("\nException raised from "); at != std::string::npos) message.resize(at);
  return message;
}

// Writes an entry through `write` (the file and its "<file>.sum" under a temporary name),
// then moves both into place: the checksum first, then the file, so a crash in between
// leaves a file whose checksum does not match (recomputed next time), never a damaged file
// that passes. Nothing temporary is left behind on failure.
void publish_atomically(const std::string& file, const std::function<void(const std::string&)>& write) {
  static std::atomic<int> counter{0};
  std::string temporary;
  try {
    fs::create_directories(fs::path(file).parent_path());
    // Both temporary names are created here, never opened through a link planted there.
    do temporary = fmt::format("{}.tmp.{}.{}", file, ::getpid(), counter++);
    while (!create_new_file(temporary) || !create_new_file(temporary + ".sum", temporary));
    write(temporary);
    fsync_file(temporary);
    fsync_file(temporary + ".sum");
    fs::rename(temporary + ".sum", checksum_path(file));
    fs::rename(temporary, file);  // atomic within one file system
    fsync_folder(fs::path(file).parent_path().string());
  } catch (const std::exception& e) {  // rguard::Error from HDF5 or the checksum, filesystem_error
    remove_temporaries(temporary);
    throw Error(fmt::format("{}: could not store this cache entry ({}); nothing of it is left, and the entries stored "
                            "so far are kept. If the disk is full, free space in the cache folder (`rguard cache gc` "
                            "removes entries no recorded run uses) and run again",
                            file, without_backtrace(e.what())));
  } catch (...) {
    remove_temporaries(temporary);
    throw;
  }
}

}  // namespace

void Cache::publish(const std::string& stage, const std::string& key,
                    const std::function<void(H5File&)>& fill) const {
  publish_atomically(path(stage, key), [&](const std::string& temporary) {
    {
      H5File h5 = H5File::create(temporary);
      fill(h5);
      h5.set_attribute("/", "stage", stage);
      h5.set_attribute("/", "key", key);
      h5.set_attribute("/", "rguard_cache_format", kFormat);
      h5.close();
    }
    std::ofstream sum(temporary + ".sum", std::ios::binary);
    sum << file_checksum(temporary);
    sum.close();  // a full disk shows when the buffer is written
    if (!sum) throw Error(fmt::format("{}.sum: cannot write (disk full?)", temporary));
  });
}

void Cache::adopt(const std::string& stage, const std::string& key, const Cache& source) const {
  const std::string from = source.path(stage, key);
  publish_atomically(path(stage, key), [&](const std::string& temporary) {
    fs::copy_file(from, temporary, fs::copy_options::overwrite_existing);
    fs::copy_file(checksum_path(from), temporary + ".sum", fs::copy_options::overwrite_existing);
  });
}

}  // namespace rguard
