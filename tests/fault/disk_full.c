// LD_PRELOAD library for the disk-full tests: a disk that fills up under one folder.
// Writes to files below $RGUARD_TEST_FULL_DIR succeed until $RGUARD_TEST_FULL_BYTES bytes
// in all have been written there; from then on they fail with ENOSPC, as write(2) does on
// a full disk. Everything else passes through. No privileges needed (a small tmpfs would
// need mount rights that CI may not have).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_llong written;

// Whether fd is a file below the folder, and whether n more bytes still fit.
static int refuse(int fd, size_t n) {
  const char* dir = getenv("RGUARD_TEST_FULL_DIR");
  const char* limit = getenv("RGUARD_TEST_FULL_BYTES");
  if (!dir || !limit || n == 0) return 0;
  char link[64], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t length = readlink(link, target, sizeof target - 1);
  if (length <= 0) return 0;
  target[length] = '\0';
  const size_t prefix = strlen(dir);
  if (strncmp(target, dir, prefix) != 0 || (target[prefix] != '/' && target[prefix] != '\0')) return 0;
  if (atomic_fetch_add(&written, (long long)n) + (long long)n <= atoll(limit)) return 0;
  errno = ENOSPC;
  return 1;
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void* buffer, size_t n) { return refuse(fd, n) ? -1 : REAL(write)(fd, buffer, n); }

ssize_t pwrite(int fd, const void* buffer, size_t n, off_t offset) {
  return refuse(fd, n) ? -1 : REAL(pwrite)(fd, buffer, n, offset);
}

ssize_t pwrite64(int fd, const void* buffer, size_t n, off64_t offset) {
  return refuse(fd, n) ? -1 : REAL(pwrite64)(fd, buffer, n, offset);
}

static size_t total(const struct iovec* iov, int count) {
  size_t n = 0;
  for (int i = 0; i < count; ++i) n += iov[i].iov_len;
  return n;
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  return refuse(fd, total(iov, count)) ? -1 : REAL(writev)(fd, iov, count);
}

ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t offset) {
  return refuse(fd, total(iov, count)) ? -1 : REAL(pwritev)(fd, iov, count, offset);
}
