// One pipeline: its sections, the top-level settings, and the validation of a point.
#include "spec/spec.hpp"

#include "spec/spec_parts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <variant>

namespace rguard {

using namespace spec_detail;

const std::vector<ParamSpec>& audit_param_specs() {
  static const std::vector<ParamSpec> specs{
      {.name = "samples", .type = ParamType::Int, .default_value = "1000",
       .doc = "fresh noise samples to re-estimate F-hat at each adversarial query", .min = 1},
      {.name = "alpha", .type = ParamType::Float, .default_value = "0.001",
       .doc = "failure probability of each re-estimate's rho", .min = 0, .max = 1, .min_exclusive = true,
       .max_exclusive = true},
      {.name = "cascade", .type = ParamType::Bool, .default_value = "false",
       .doc = "attack, at each eps, only queries no earlier attack has broken"},
      {.name = "batch", .type = ParamType::Int, .default_value = "50", .doc = "queries attacked together", .min = 1},
      {.name = "save_images", .type = ParamType::Bool, .default_value = "false",
       .doc = "store the adversarial images in certificates.h5"},
  };
  return specs;
}


namespace {

const std::vector<ParamSpec>& top_level_scalars() {
  static const std::vector<ParamSpec> specs{
      {.name = "name", .type = ParamType::String, .default_value = "", .doc = "run name; default: the file's stem"},
      {.name = "seed", .type = ParamType::Int, .default_value = "0", .doc = "seed of every random stream",
       .min = 0, .max = 1e18},
      {.name = "threads", .type = ParamType::Int, .default_value = "0", .doc = "LibTorch threads; 0 = all cores",
       .min = 0, .max = 1024},
      {.name = "device", .type = ParamType::String, .default_value = "cpu", .doc = "cpu, cuda or cuda:N"},
      {.name = "output", .type = ParamType::String, .default_value = "results", .doc = "output root"},
      {.name = "cache", .type = ParamType::String, .default_value = "", .doc = "cache folder; default <output>/cache"},
  };
  return specs;
}


}  // namespace

std::string StageSpec::canonical() const {
  std::string text = fmt::format("{}@{}{{", plugin, entry ? entry->version : "?");
  for (const auto& [name, value] : params.values()) text += fmt::format("{}={};", name, to_yaml_text(value));
  return text + "}";
}

namespace spec_detail {

namespace {

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> sections{"name",  "seed",    "threads",   "device",  "output", "cache",
                                                 "dataset", "backbone", "denoiser", "noise", "certifier", "attacks", "audit", "metrics",
                                                 "sweep"};
  return sections;
}

// Why `name` cannot be a folder name (of the outputs, and of cache/uses/<name>.json), or "".
// Beside the run folder rguard makes ".<name>.partial-<host>-<pid>-XXXXXX" (core/src/
// run_folder.cpp; <host>: 8 hex digits), 33 bytes more with a 7-digit pid: 200 leaves room.
constexpr std::size_t kMaxRunName = 200;

std::string unusable_run_name(const std::string& name) {
  if (name.empty()) return "it is empty";
  if (name.size() > kMaxRunName)
    return fmt::format("it is {} bytes long; with the suffixes of its staging folder it would not fit in a file name's 255 "
                       "bytes",
                       name.size());
  if (name.find_first_of("/\\") != std::string::npos) return "it contains a path separator";
  if (name[0] == '.') return "it starts with '.'";
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return "it contains a control character";
  if (!valid_utf8(name)) return "it is not valid UTF-8";
  return "";
}

// Every top-level key is a section: in the file, and again once --set and the sweep have
// written theirs (a key they add must not be ignored).
void check_sections(const YamlNode& root) {
  const auto& sections = section_names();
  for (std::size_t i = 0; i < root.entries.size(); ++i) {
    const std::string& key = root.entries[i].first;
    if (std::find(sections.begin(), sections.end(), key) == sections.end())
      fail(root.key_locations[i], key,
           fmt::format("unknown section{}; a pipeline has: {}", did_you_mean(key, sections), join(sections)));
  }
}

// "cpu", "cuda" or "cuda:N", the forms LibTorch's own parser would take apart (it also
// knows other backends, which rguard does not run on), checked here so that a typo is
// refused with its location instead of LibTorch's text.
bool valid_device(const std::string& device) {
  if (device == "cpu" || device == "cuda") return true;
  if (device.rfind("cuda:", 0) != 0) return false;
  const std::string index = device.substr(5);
  return !index.empty() && index.size() <= 4 && std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
         (index == "0" || index[0] != '0');
}

// The values of these lists each name results (an attack's eps: a certificates.h5 group
// "eps=<value>"; a radius or a K: metrics.csv rows and per-query columns), so a value listed
// twice would collide in the outputs, after all the work.
void check_unique_lists(const YamlNodePtr& root, const std::vector<StageSpec>& stages, const char* section,
                        const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < stages.size(); ++i)
    for (const std::string& name : names) {
      if (!stages[i].params.has(name)) continue;
      const std::vector<double> values = stages[i].params.get_float_list(name);
      const std::string key = fmt::format("{}[{}].{}", section, i, name);
      for (std::size_t b = 1; b < values.size(); ++b)
        for (std::size_t a = 0; a < b; ++a) {
          if (values[a] != values[b]) continue;
          const YamlNodePtr node = lookup(root, fmt::format("{}.{}.{}", section, i, name));
          SourceLocation where = stages[i].location;
          if (node && node->kind == YamlNode::Kind::Sequence && b < node->items.size()) where = node->items[b]->location;
          else if (node) where = node->location;
          fail(where, fmt::format("{}[{}]", key, b),
               fmt::format("{} is listed twice (also {}[{}]); each value names its own results: list it once", values[b],
                           key, a));
        }
    }
}

// certified_recall's Recall@K reads the K-th radius the certifier keeps (Certificate's
// rank_radius, certifier.ranks of them): a K beyond it would fail after certifying.
void check_recall_ranks(const YamlNodePtr& root, const PipelineSpec& spec) {
  if (!spec.certifier.params.has("ranks")) return;
  const std::int64_t ranks = spec.certifier.params.get_int("ranks");
  double most = std::numeric_limits<double>::infinity();
  for (const ParamSpec& p : spec.certifier.entry->schema())
    if (std::string(p.name) == "ranks") most = p.max;
  for (std::size_t i = 0; i < spec.metrics.size(); ++i) {
    const StageSpec& metric = spec.metrics[i];
    if (metric.plugin != "certified_recall" || !metric.params.has("k")) continue;
    const std::vector<std::int64_t> ks = metric.params.get_int_list("k");
    for (std::size_t j = 0; j < ks.size(); ++j) {
      if (ks[j] <= ranks) continue;
      const YamlNodePtr node = lookup(root, fmt::format("metrics.{}.k", i));
      SourceLocation where = metric.location;
      if (node && node->kind == YamlNode::Kind::Sequence && j < node->items.size()) where = node->items[j]->location;
      else if (node) where = node->location;
      const std::string key = fmt::format("metrics[{}].k[{}]", i, j);
      if (static_cast<double>(ks[j]) > most)
        fail(where, key,
             fmt::format("certified Recall@{} needs the certifier to keep {} radii per query, but certifier.ranks is at "
                         "most {}; use K <= {}",
                         ks[j], ks[j], most, most));
      fail(where, key,
           fmt::format("certified Recall@{} needs the certifier to keep {} radii per query, but certifier.ranks is {}; "
                       "set certifier.ranks: {} (or drop K = {})",
                       ks[j], ks[j], ranks, ks[j], ks[j]));
    }
  }
}

}  // namespace

YamlNodePtr prepared_root(const YamlNodePtr& parsed) {
  YamlNodePtr root = parsed->clone();
  if (root->kind == YamlNode::Kind::Null) {
    root->kind = YamlNode::Kind::Map;
    if (root->location.line > 0)
      fail(root->location, "pipeline", "the file has no sections (empty, or only comments); start from pipelines/quickstart.yaml");
  }
  if (root->kind != YamlNode::Kind::Map)
    fail(root->location, "pipeline", fmt::format("expected a mapping of sections, got {}", shown(*root)));
  check_sections(*root);
  return root;
}

// Validates one point's tree (overrides applied, no sweep block).
PipelineSpec validate_point(const YamlNodePtr& root, const std::string& file, const PluginCatalog& catalog) {
  check_sections(*root);
  interpolate(root, root, 0);

  PipelineSpec spec;
  spec.file = file;
  Params top;
  for (const ParamSpec& s : top_level_scalars()) {
    if (auto node = root->find(s.name)) top.set(s.name, convert(s, *node, s.name));
    else top.set(s.name, convert_default(s, s.name));
  }
  spec.name = top.get_string("name");
  if (spec.name.empty()) spec.name = std::filesystem::path(file).stem().string();
  if (const std::string why = unusable_run_name(spec.name); !why.empty())
    fail(root->find("name") ? root->find("name")->location : root->location, "name",
         fmt::format("{} cannot name an output folder: {}; use letters, digits, '-', '_' (at most {} bytes)",
                     printable(spec.name), why, kMaxRunName));
  spec.seed = static_cast<std::uint64_t>(top.get_int("seed"));
  spec.threads = top.get_int("threads");
  spec.device = top.get_string("device");
  if (auto node = root->find("device")) spec.device_location = node->location;
  if (!valid_device(spec.device))
    fail(spec.device_location, "device",
         fmt::format("expected cpu, cuda or cuda:N (N = 0, 1, ...: a GPU's index), got {}", printable(spec.device)));
  spec.output_root = top.get_string("output");
  spec.cache_root = top.get_string("cache");
  if (spec.cache_root.empty()) spec.cache_root = (std::filesystem::path(spec.output_root) / "cache").string();

  auto stage_at = [&](const YamlNode& node, const char* section, PluginKind kind) {
    StageSpec stage = resolve_stage(node, kind, section, catalog);
    // Failures of the stage's plugin point at the line where the section begins.
    for (std::size_t i = 0; i < root->entries.size(); ++i)
      if (root->entries[i].first == section) stage.location = root->key_locations[i];
    return stage;
  };
  auto required = [&](const char* section, PluginKind kind) {
    auto node = root->find(section);
    if (!node)
      fail(root->location, section,
           fmt::format("missing section; add e.g. '{}: {{plugin: <name>}}' ({} plugins: {})", section,
                       to_string(kind), join(catalog.names(kind))));
    return stage_at(*node, section, kind);
  };
  // Noise and certifier first: other sections usually refer to their values (${noise.sigma}),
  // and an error is clearest under the key where the value was written.
  spec.dataset = required("dataset", PluginKind::Dataset);
  spec.noise = required("noise", PluginKind::Noise);
  spec.certifier = required("certifier", PluginKind::Certifier);
  spec.backbone = required("backbone", PluginKind::Backbone);
  if (auto node = root->find("denoiser"); node && node->kind != YamlNode::Kind::Null)
    spec.denoiser = stage_at(*node, "denoiser", PluginKind::Denoiser);
  auto list = [&](const char* section, PluginKind kind) {
    std::vector<StageSpec> stages;
    auto node = root->find(section);
    if (!node || node->kind == YamlNode::Kind::Null) return stages;
    if (node->kind != YamlNode::Kind::Sequence)
      fail(node->location, section, fmt::format("expected a list of {{plugin: <name>, ...}}, got {}", shown(*node)));
    for (std::size_t i = 0; i < node->items.size(); ++i)
      stages.push_back(resolve_stage(*node->items[i], kind, fmt::format("{}[{}]", section, i), catalog));
    return stages;
  };
  spec.attacks = list("attacks", PluginKind::Attack);
  if (auto audit = root->find("audit")) {
    if (audit->kind != YamlNode::Kind::Map)
      fail(audit->location, "audit", fmt::format("expected a mapping like {{samples: 1000}}, got {}", shown(*audit)));
    spec.audit = resolve_params(*audit, audit_param_specs(), "audit", "section audit", "");
  } else {
    YamlNode empty;
    empty.kind = YamlNode::Kind::Map;
    spec.audit = resolve_params(empty, audit_param_specs(), "audit", "section audit", "");
  }
  spec.metrics = list("metrics", PluginKind::Metric);
  check_unique_lists(root, spec.attacks, "attacks", {"eps"});
  check_unique_lists(root, spec.metrics, "metrics", {"radii", "k"});
  check_recall_ranks(root, spec);
  spec.resolved_yaml = emit_resolved(spec);
  return spec;
}

}  // namespace spec_detail

}  // namespace rguard
