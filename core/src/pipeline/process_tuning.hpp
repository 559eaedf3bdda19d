// Process-wide settings for a program that runs the same forward passes many times.
#pragma once

namespace rguard {

// Call first thing in main(), before any thread starts. Measured effects on the
// quickstart CNN are in docs/performance.md.
// - glibc malloc: by default blocks above the mmap threshold are fresh mmap()s and freed
//   heap tops go back to the system, so every batch page-faults its activations in
//   again (2.5x slower forward passes). Freed memory is kept for reuse instead, unless
//   GLIBC_TUNABLES already sets a malloc option (the user's choice wins).
// - OpenBLAS built with pthreads keeps its own threads spinning between calls, which
//   starves LibTorch's OpenMP threads (2x slower sampling); with that build BLAS calls
//   run on the calling thread. scripts/setup.sh selects the OpenMP build, which shares
//   LibTorch's pool and needs nothing.
void tune_process();

}  // namespace rguard
