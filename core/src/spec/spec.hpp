// The pipeline spec: YAML in, a validated, fully resolved PipelineSpec out. Everything
// is checked before anything runs; each message names file:line:column, the key, what
// was expected and what to do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rguard/error.hpp"
#include "rguard/params.hpp"
#include "rguard/plugin.hpp"
#include "spec/yaml_tree.hpp"

namespace rguard {

// Which plugins exist and what they accept (implemented by the plugin loader).
class PluginCatalog {
 public:
  virtual ~PluginCatalog() = default;
  virtual const PluginEntry* find(PluginKind kind, const std::string& name) const = 0;
  virtual std::vector<std::string> names(PluginKind kind) const = 0;
};

struct StageSpec {
  PluginKind kind = PluginKind::Dataset;
  std::string section;  // where it sits in the spec: "backbone", "metrics[1]"
  std::string plugin;
  const PluginEntry* entry = nullptr;
  Params params;
  SourceLocation location;
  // "name@version{key=value;...}": what a cache key hashes for this stage.
  std::string canonical() const;
};

struct PipelineSpec {
  std::string file;
  std::string name;
  std::string point = "main";  // sweep point name: "noise.sigma=0.25" (or "main" without a sweep)
  std::uint64_t seed = 0;
  std::int64_t threads = 0;  // 0: all cores
  std::string device = "cpu";    // "cpu", "cuda" or "cuda:N" (checked); whether it exists is the runner's to check
  SourceLocation device_location;  // where `device` was written (none: the default)
  std::string output_root;
  std::string cache_root;
  StageSpec dataset, backbone, noise, certifier;
  std::optional<StageSpec> denoiser;  // denoised smoothing: certify backbone o denoiser
  std::vector<StageSpec> attacks, metrics;
  Params audit;  // how attacks are evaluated (audit_param_specs)
  std::string resolved_yaml;  // every default filled in, overrides applied
};

// The `audit:` section: how attacked queries are re-certified (soundness audit).
const std::vector<ParamSpec>& audit_param_specs();

struct SweepPoint {
  std::string name;
  std::vector<std::pair<std::string, std::string>> assignment;  // swept key -> value text
  PipelineSpec spec;
};

// A spec with its sweep expanded: one PipelineSpec per point (a single "main" point
// without a sweep). Run-level settings (name, output, cache, threads, device) are shared.
struct ExperimentSpec {
  std::string file, name, output_root, cache_root;
  bool swept = false;
  std::vector<SweepPoint> points;
  std::string resolved_yaml;
};

// sweep: {grid: {key: [values]}, zip: {key: [values], ...}, include: [{key: value, ...}]}:
// the grid's product, crossed with the zipped tuples, plus the included points.
// "--set key=v1,v2" adds (or replaces) a grid axis; "--set key=v" fixes the key.
ExperimentSpec load_experiment_spec(const std::string& file, const std::vector<std::string>& overrides,
                                    const PluginCatalog& catalog);
ExperimentSpec resolve_experiment_spec(const YamlNodePtr& root, const std::string& file,
                                       const std::vector<std::string>& overrides, const PluginCatalog& catalog);

// A spec without a sweep. `overrides` are "dotted.key=value" (value in YAML flow syntax; list items by index:
// "metrics.0.k=[1,2]"). Values may refer to other keys as ${dotted.key}.
PipelineSpec load_pipeline_spec(const std::string& file, const std::vector<std::string>& overrides,
                                const PluginCatalog& catalog);
PipelineSpec resolve_pipeline_spec(const YamlNodePtr& root, const std::string& file,
                                   const std::vector<std::string>& overrides,
                                   const PluginCatalog& catalog);

// " (did you mean 'x'?)" for the closest candidate within a small edit distance, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace rguard
