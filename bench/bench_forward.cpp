// Side-by-side throughput of the pieces of certification sampling for one backbone:
// raw LibTorch forward passes on a fixed batch, Philox noise generation, and both
// together as the executor does them. Usage: rguard_bench_forward [batch] [seconds]
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <tbb/parallel_for.h>
#include <torch/types.h>

#include <chrono>
#include <thread>

#include "rguard/backbone.hpp"
#include "rguard/loader.hpp"
#include "rguard/process_tuning.hpp"
#include "rguard/noise.hpp"
#include "rguard/spec.hpp"

using namespace rguard;

namespace {
template <class F>
double rate(std::int64_t items, double seconds, F&& body) {
  body();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  std::int64_t done = 0;
  double elapsed = 0;
  while (elapsed < seconds) {
    body();
    done += items;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return static_cast<double>(done) / elapsed;
}
}  // namespace

int main(int argc, char** argv) {
  const std::int64_t batch = argc > 1 ? std::stoll(argv[1]) : 1000;
  const double seconds = argc > 2 ? std::stod(argv[2]) : 3.0;
  rguard::tune_process();
  const int threads = static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  PluginLoader loader;
  auto spec = resolve_pipeline_spec(parse_yaml(R"(
dataset: {plugin: synthetic}
backbone: {plugin: small_cnn, channels: [16, 32], embedding_dim: 64}
noise: {plugin: gaussian, sigma: 0.25}
certifier: {plugin: retrievalguard}
)", "bench"), "bench", {}, loader);
  auto backbone = loader.create<Backbone>(spec.backbone);
  auto noise = loader.create<Noise>(spec.noise);
  backbone->init({1, 28, 28}, 0);
  backbone->set_training(false);
  const std::int64_t pixels = 28 * 28;
  auto images = torch::rand({batch, 1, 28, 28});
  std::vector<float> buffer(static_cast<std::size_t>(batch * pixels));

  const double forward = rate(batch, seconds, [&] {
    c10::InferenceMode guard;
    backbone->forward(images);
  });
  const double noise_rate = rate(batch, seconds, [&] {
    at::parallel_for(0, batch, 8, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) noise->sample(1, 0, i, 1, pixels, buffer.data() + i * pixels);
    });
  });
  const double both = rate(batch, seconds, [&] {
    at::parallel_for(0, batch, 8, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) noise->sample(1, 0, i, 1, pixels, buffer.data() + i * pixels);
    });
    c10::InferenceMode guard;
    backbone->forward(torch::from_blob(buffer.data(), {batch, 1, 28, 28}));
  });
  fmt::print("threads {}  batch {}\n", threads, batch);
  fmt::print("forward only      {:>10.0f} images/s\n", forward);
  fmt::print("noise only        {:>10.0f} images/s\n", noise_rate);
  fmt::print("noise + forward   {:>10.0f} images/s\n", both);
}
