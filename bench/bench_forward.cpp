// P1's raw side: throughput of the pieces of certification sampling for the quickstart
// backbone (small_cnn [16, 32], k = 64, 1x28x28) at one batch size and thread count:
//   eager      the same layers as plain LibTorch modules (torch::nn), no autograd
//   backbone   rguard's small_cnn forward as the sampler calls it (oneDNN inference path)
//   noise      Philox Gaussian noise for a batch, plus the clean image, as the sampler does
//   both       noise then backbone, one batch after the other
//   gemm       a 2048^3 single-precision matrix product (the machine's measured peak, P6)
// Each is measured in rounds interleaved with the others; the best round is printed.
// P6 compares the backbone's achieved GFLOP/s (2 x multiply-adds of its convolutions and
// linear layer, counted from the shapes below) with the GEMM's.
// Usage: rguard_bench_forward [batch=256] [seconds per round=1] [rounds=3]
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "rguard/backbone.hpp"
#include "plugin/loader.hpp"
#include "rguard/noise.hpp"
#include "pipeline/process_tuning.hpp"
#include "spec/spec.hpp"

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
  tune_process();
  const std::int64_t batch = argc > 1 ? std::stoll(argv[1]) : 256;
  const double seconds = argc > 2 ? std::stod(argv[2]) : 1.0;
  const int rounds = argc > 3 ? std::stoi(argv[3]) : 3;
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
  torch::nn::Sequential eager(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 3).padding(1)), torch::nn::ReLU(),
                              torch::nn::MaxPool2d(2), torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1)),
                              torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(),
                              torch::nn::Linear(32 * 7 * 7, 64));
  eager->eval();
  const std::int64_t pixels = 28 * 28;
  const auto clean = torch::rand({batch, 1, 28, 28});
  const float* clean_pixels = clean.data_ptr<float>();
  std::vector<float> buffer(static_cast<std::size_t>(batch * pixels));
  auto make_noisy = [&] {
    at::parallel_for(0, batch, 8, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        float* out = buffer.data() + i * pixels;
        noise->sample(1, 0, i, 1, pixels, out);
        for (std::int64_t j = 0; j < pixels; ++j) out[j] += clean_pixels[i * pixels + j];
      }
    });
  };
  auto noisy = torch::from_blob(buffer.data(), {batch, 1, 28, 28});
  const auto a = torch::rand({2048, 2048}), b = torch::rand({2048, 2048});
  std::map<std::string, double> best;
  for (int round = 0; round < rounds; ++round) {
    auto keep = [&](const char* name, double value) { best[name] = std::max(best[name], value); };
    keep("eager", rate(batch, seconds, [&] {
           c10::InferenceMode guard;
           torch::nn::functional::normalize(eager->forward((clean - 0.286) / 0.353),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
         }));
    keep("backbone", rate(batch, seconds, [&] {
           c10::InferenceMode guard;
           backbone->forward(clean);
         }));
    keep("noise", rate(batch, seconds, make_noisy));
    keep("both", rate(batch, seconds, [&] {
           make_noisy();
           c10::InferenceMode guard;
           backbone->forward(noisy);
         }));
    keep("gemm", rate(1, seconds, [&] { at::mm(a, b); }));
  }
  // conv 1->16 at 28x28, conv 16->32 at 14x14 (3x3 kernels), linear 1568->64.
  const double flop_per_image = 2.0 * (1 * 16 * 9 * 28 * 28 + 16 * 32 * 9 * 14 * 14 + 32 * 7 * 7 * 64);
  const double gemm_gflops = best["gemm"] * 2.0 * 2048 * 2048 * 2048 / 1e9;
  const double forward_gflops = best["backbone"] * flop_per_image / 1e9;
  fmt::print("threads {} batch {} (images/s, best of {} rounds of {} s)\n", threads, batch, rounds, seconds);
  for (const char* name : {"eager", "backbone", "noise", "both"}) fmt::print("{:<10} {:>10.0f}\n", name, best[name]);
  fmt::print("P6: backbone {:.1f} GFLOP/s ({:.2f} MFLOP/image) = {:.0f}% of the measured GEMM peak {:.1f} GFLOP/s\n",
             forward_gflops, flop_per_image / 1e6, 100 * forward_gflops / gemm_gflops, gemm_gflops);
}
