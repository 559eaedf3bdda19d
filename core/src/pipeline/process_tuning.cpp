#include "pipeline/process_tuning.hpp"

#include <dlfcn.h>
#include <malloc.h>

#include <cstdlib>
#include <string_view>

namespace rguard {

namespace {

void keep_freed_memory_for_reuse() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string_view(tunables).find("malloc") != std::string_view::npos) return;
  // One arena: a worker thread's own arena lives in 64 MiB heaps that glibc unmaps as
  // soon as they are empty, which a batch's activations regularly make them.
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_MAX, 0);              // large blocks from the heap, not a fresh mmap each
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // keep up to 1 GiB of freed heap top for reuse
}

void keep_blas_off_spinning_threads() {
  // openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP (OpenBLAS's cblas.h).
  using GetParallel = int (*)();
  using SetThreads = void (*)(int);
  auto get_parallel = reinterpret_cast<GetParallel>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (get_parallel && set_threads && get_parallel() == 1) set_threads(1);
}

}  // namespace

void tune_process() {
  keep_freed_memory_for_reuse();
  keep_blas_off_spinning_threads();
}

}  // namespace rguard
