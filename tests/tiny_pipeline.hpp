// The tiny pipeline the end-to-end tests run (synthetic data, a 4-channel small_cnn, n = 300),
// a fresh workspace for its outputs and cache, and the plugin loader of the build tree.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pipeline/executor.hpp"
#include "plugin/loader.hpp"
#include "spec/spec.hpp"

namespace tiny_pipeline {

using namespace rguard;
namespace fs = std::filesystem;

inline const PluginLoader& loader() {
  static const PluginLoader instance({RGUARD_PLUGIN_DIR, RGUARD_TEST_PLUGIN_DIR});
  return instance;
}

inline const char* const kTiny = R"(name: tiny
seed: 5
threads: 2
dataset: {plugin: synthetic, classes: 6, train_classes: 3, per_class: 10, image_size: 12}
backbone:
  plugin: small_cnn
  channels: [4]
  embedding_dim: 8
  input_mean: 0.5
  input_std: 0.25
  train: {epochs: 2, batch: 30, per_class: 10, noise_sigma: 0.25}
noise: {plugin: gaussian, sigma: 0.25}
certifier: {plugin: retrievalguard, n: 300, alpha: 0.01, batch: 128, queries: 20}
metrics:
  - {plugin: recall_at_k, k: [1, 5]}
  - {plugin: certified_recall, radii: [0, 0.01, 0.05, 0.1]}
)";

// A fresh folder per test: outputs and cache live there.
struct Workspace {
  fs::path root;
  explicit Workspace(const std::string& name) : root(fs::temp_directory_path() / ("rguard_test_" + name)) {
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~Workspace() { fs::remove_all(root); }
  PipelineSpec spec(const std::vector<std::string>& overrides = {}, const std::string& text = kTiny) const {
    std::vector<std::string> all{"output=" + (root / "out").string(), "cache=" + (root / "cache").string()};
    all.insert(all.end(), overrides.begin(), overrides.end());  // later overrides win
    return resolve_pipeline_spec(parse_yaml(text, "tiny.yaml"), "tiny.yaml", all, loader());
  }
  RunResult run(std::vector<std::string> overrides = {}) const {
    return run_pipeline(spec(std::move(overrides)), loader(), RunOptions{});
  }
  std::string file(const std::string& name) const {
    std::ifstream in(root / "out" / "tiny" / name, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
};

inline std::string status_of(const RunResult& result, const std::string& stage) {
  for (const auto& s : result.stages)
    if (s.stage == stage) return s.status;
  return "(absent)";
}

}  // namespace tiny_pipeline

using namespace tiny_pipeline;
