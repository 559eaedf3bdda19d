// Fuzz target: a pipeline file (and --set overrides after a line "#--set") through the
// YAML tree, ${...} references, sweeps and validation against a catalog of schemas like
// the real plugins'. Any rguard::Error is a correct answer; anything else is a bug.
#include <cstdint>
#include <string>
#include <vector>

#include "spec/spec.hpp"

namespace {

using namespace rguard;

Plugin* create(const Params&) { return nullptr; }

const std::vector<ParamSpec>& dataset_schema() {
  static const std::vector<ParamSpec> s{
      {.name = "classes", .type = ParamType::Int, .default_value = "6", .min = 3},
      {.name = "eval_classes", .type = ParamType::IntList, .default_value = "[5, 6]", .min = 0, .max = 9},
      {.name = "protocol", .type = ParamType::String, .default_value = "leave_one_out",
       .choices = "leave_one_out|query_gallery"}};
  return s;
}
const std::vector<ParamSpec>& backbone_schema() {
  static const std::vector<ParamSpec> s{
      {.name = "embedding_dim", .type = ParamType::Int, .default_value = "64", .min = 1},
      {.name = "channels", .type = ParamType::IntList, .default_value = "[32, 64]", .min = 1},
      {.name = "train.epochs", .type = ParamType::Int, .default_value = "2", .min = 0},
      {.name = "train.noise_sigma", .type = ParamType::Float, .default_value = "0.25", .min = 0},
      {.name = "train.shuffle", .type = ParamType::Bool, .default_value = "true"}};
  return s;
}
const std::vector<ParamSpec>& noise_schema() {
  static const std::vector<ParamSpec> s{
      {.name = "sigma", .type = ParamType::Float, .default_value = "0.25", .min = 0, .min_exclusive = true}};
  return s;
}
const std::vector<ParamSpec>& certifier_schema() {
  static const std::vector<ParamSpec> s{
      {.name = "n", .type = ParamType::Int, .default_value = "100000", .min = 1},
      {.name = "alpha", .type = ParamType::Float, .default_value = "0.001", .min = 0, .max = 1, .min_exclusive = true,
       .max_exclusive = true},
      {.name = "radius", .type = ParamType::String, .default_value = "max", .choices = "max|a|b|c"}};
  return s;
}
const std::vector<ParamSpec>& metric_schema() {
  static const std::vector<ParamSpec> s{
      {.name = "radii", .type = ParamType::FloatList, .default_value = "[0, 0.1]", .min = 0}};
  return s;
}

const PluginEntry kEntries[] = {
    {kPluginApiVersion, kPluginAbiTag, PluginKind::Dataset, "synthetic", "1", "", &dataset_schema, &create},
    {kPluginApiVersion, kPluginAbiTag, PluginKind::Backbone, "small_cnn", "1", "", &backbone_schema, &create},
    {kPluginApiVersion, kPluginAbiTag, PluginKind::Noise, "gaussian", "1", "", &noise_schema, &create},
    {kPluginApiVersion, kPluginAbiTag, PluginKind::Certifier, "retrievalguard", "1", "", &certifier_schema, &create},
    {kPluginApiVersion, kPluginAbiTag, PluginKind::Metric, "certified_recall", "1", "", &metric_schema, &create},
};

class Catalog final : public PluginCatalog {
 public:
  const PluginEntry* find(PluginKind kind, const std::string& name) const override {
    for (const auto& e : kEntries)
      if (e.kind == kind && name == e.name) return &e;
    return nullptr;
  }
  std::vector<std::string> names(PluginKind kind) const override {
    std::vector<std::string> out;
    for (const auto& e : kEntries)
      if (e.kind == kind) out.emplace_back(e.name);
    return out;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  const std::size_t marker = text.find("\n#--set");
  if (marker != std::string::npos) {
    std::string rest = text.substr(marker + 7);
    text.resize(marker);
    for (std::size_t start = 0; start <= rest.size();) {
      const std::size_t end = std::min(rest.find('\n', start), rest.size());
      if (end > start) overrides.push_back(rest.substr(start, end - start));
      start = end + 1;
    }
  }
  static const Catalog catalog;
  try {
    resolve_experiment_spec(parse_yaml(text, "fuzz.yaml"), "fuzz.yaml", overrides, catalog);
  } catch (const Error&) {
  }
  return 0;
}
