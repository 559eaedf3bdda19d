// P5: exact nearest-neighbour search as the metrics run it (rguard::nearest_gallery_rows:
// blocked matrix products + a bounded heap per query, ties to the lower row).
//   1. 10,000 queries x 60,000 gallery rows x k = 128, dim 128 (target <= 2 s on 2 cores)
//   2. SOP scale: 60,000 x 60,000 leave-one-out, k = 128, with the process's peak memory
//      growth (a full distance matrix would be 14.4 GB)
// Usage: rguard_bench_knn [repeats=3]
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "pipeline/process_tuning.hpp"
#include "rguard/retrieval.hpp"

namespace {

long peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

at::Tensor unit_rows(std::int64_t rows, std::int64_t dim) {
  auto x = torch::randn({rows, dim});
  return (x / x.norm(2, 1, true)).contiguous();
}

double search_seconds(const at::Tensor& queries, const at::Tensor& gallery, std::int64_t k, bool leave_one_out) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(gallery.size(0)), 0), self, ids;
  for (std::int64_t i = 0; i < queries.size(0); ++i) {
    self.push_back(leave_one_out ? i : -1);
    ids.push_back(i);
  }
  const rguard::GalleryView g{gallery.data_ptr<float>(), labels.data(), gallery.size(0), gallery.size(1)};
  const rguard::QueryView q{queries.data_ptr<float>(), labels.data(), self.data(), ids.data(), queries.size(0)};
  const auto start = std::chrono::steady_clock::now();
  const auto nearest = rguard::nearest_gallery_rows(q, g, k);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (nearest.front() < 0) fmt::print("unexpected: no neighbour\n");
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  rguard::tune_process();
  const int repeats = argc > 1 ? std::stoi(argv[1]) : 3;
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  torch::manual_seed(0);
  const auto gallery = unit_rows(60000, 128);
  const auto queries = unit_rows(10000, 128);
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) times.push_back(search_seconds(queries, gallery, 128, false));
  std::sort(times.begin(), times.end());
  fmt::print("threads {}\n", at::get_num_threads());
  fmt::print("10k x 60k x k=128 (dim 128): best {:.2f} s, median {:.2f} s of {}\n", times.front(), times[times.size() / 2],
             repeats);
  const long before = peak_rss_mib();
  const double sop = search_seconds(gallery, gallery, 128, true);
  fmt::print("60k x 60k x k=128 leave-one-out: {:.2f} s, peak memory grew by {} MiB (process peak {} MiB; a full "
             "distance matrix is 13733 MiB)\n",
             sop, peak_rss_mib() - before, peak_rss_mib());
}
