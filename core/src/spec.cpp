#include "rguard/spec.hpp"

#include <fmt/format.h>
#include <yaml-cpp/emitter.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <variant>

namespace rguard {

namespace {

[[noreturn]] void fail(const SourceLocation& where, const std::string& key, const std::string& what) {
  throw Error(fmt::format("{}: {}: {}", where.str(), key, what));
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join(const std::vector<std::string>& words) {
  return words.empty() ? std::string("(none found)") : fmt::format("{}", fmt::join(words, ", "));
}

// ---- scalar conversion -------------------------------------------------------------

std::optional<double> parse_number(std::string text) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<std::int64_t> parse_int(const std::string& text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size()) return value;
  // Accept integral numbers written as floats ("1e5" = 100000).
  auto number = parse_number(text);
  if (number && std::trunc(*number) == *number && std::abs(*number) < 9.0e18)
    return static_cast<std::int64_t>(*number);
  return std::nullopt;
}

std::string expected_phrase(const ParamSpec& spec, bool element = false) {
  const ParamType type = !element                          ? spec.type
                         : spec.type == ParamType::IntList ? ParamType::Int
                                                           : ParamType::Float;
  const std::string range = spec.range_text();
  return range.empty() ? std::string(to_string(type)) : fmt::format("{} {}", to_string(type), range);
}

std::string shown(const YamlNode& node) {
  if (node.kind == YamlNode::Kind::Scalar) return fmt::format("'{}'", node.value);
  return to_string(node.kind);
}

void check_range(const ParamSpec& spec, double v, const YamlNode& node, const std::string& key, bool element) {
  const bool low = spec.min_exclusive ? !(v > spec.min) : v < spec.min;
  const bool high = spec.max_exclusive ? !(v < spec.max) : v > spec.max;
  if (low || high)
    fail(node.location, key, fmt::format("expected {}, got {}", expected_phrase(spec, element), node.value));
}

double scalar_number(const ParamSpec& spec, const YamlNode& node, const std::string& key, bool integer,
                     bool element = false) {
  std::optional<double> value;
  if (node.kind == YamlNode::Kind::Scalar && !node.quoted) {
    if (integer) {
      if (auto i = parse_int(node.value)) value = static_cast<double>(*i);
    } else {
      value = parse_number(node.value);
    }
  }
  if (!value)
    fail(node.location, key, fmt::format("expected {}, got {}", expected_phrase(spec, element), shown(node)));
  check_range(spec, *value, node, key, element);
  return *value;
}

ParamValue convert(const ParamSpec& spec, const YamlNode& node, const std::string& key) {
  switch (spec.type) {
    case ParamType::Bool: {
      if (node.kind == YamlNode::Kind::Scalar && !node.quoted) {
        if (node.value == "true" || node.value == "True" || node.value == "TRUE") return true;
        if (node.value == "false" || node.value == "False" || node.value == "FALSE") return false;
      }
      fail(node.location, key, fmt::format("expected true or false, got {}", shown(node)));
    }
    case ParamType::Int: return static_cast<std::int64_t>(scalar_number(spec, node, key, true));
    case ParamType::Float: return scalar_number(spec, node, key, false);
    case ParamType::String: {
      if (node.kind != YamlNode::Kind::Scalar)
        fail(node.location, key, fmt::format("expected {}, got {}", expected_phrase(spec), shown(node)));
      if (spec.choices) {
        const std::string choices = spec.choices;
        std::vector<std::string> options;
        for (std::size_t start = 0;;) {
          const std::size_t bar = choices.find('|', start);
          options.push_back(choices.substr(start, bar - start));
          if (bar == std::string::npos) break;
          start = bar + 1;
        }
        if (std::find(options.begin(), options.end(), node.value) == options.end())
          fail(node.location, key,
               fmt::format("expected one of {}, got '{}'{}", choices, node.value, did_you_mean(node.value, options)));
      }
      return node.value;
    }
    case ParamType::IntList:
    case ParamType::FloatList: {
      const bool integer = spec.type == ParamType::IntList;
      std::vector<const YamlNode*> items;
      if (node.kind == YamlNode::Kind::Sequence) {
        for (const auto& item : node.items) items.push_back(item.get());
      } else if (node.kind == YamlNode::Kind::Scalar) {
        items.push_back(&node);  // a single value is a list of one
      } else {
        fail(node.location, key, fmt::format("expected {}, got {}", expected_phrase(spec), shown(node)));
      }
      std::vector<std::int64_t> ints;
      std::vector<double> floats;
      for (std::size_t i = 0; i < items.size(); ++i) {
        const double v = scalar_number(spec, *items[i], fmt::format("{}[{}]", key, i), integer, true);
        if (integer) ints.push_back(static_cast<std::int64_t>(v)); else floats.push_back(v);
      }
      if (integer) return ints;
      return floats;
    }
  }
  fail(node.location, key, "internal: unknown parameter type");
}

ParamValue convert_default(const ParamSpec& spec, const std::string& key) {
  if (spec.type == ParamType::String && std::string(spec.default_value).empty()) return std::string();
  auto node = parse_yaml(spec.default_value, fmt::format("<default of {}>", key));
  return convert(spec, *node, key);
}

// ---- stages ------------------------------------------------------------------------

bool is_prefix_of_some(const std::string& prefix, const std::vector<ParamSpec>& schema) {
  for (const auto& spec : schema)
    if (std::string(spec.name).rfind(prefix + ".", 0) == 0) return true;
  return false;
}

const ParamSpec* find_spec(const std::string& name, const std::vector<ParamSpec>& schema) {
  for (const auto& spec : schema)
    if (name == spec.name) return &spec;
  return nullptr;
}

std::vector<std::string> schema_names(const std::vector<ParamSpec>& schema) {
  std::vector<std::string> names{"plugin"};
  for (const auto& spec : schema) names.emplace_back(spec.name);
  return names;
}

void flatten(const YamlNode& map, const std::string& prefix, const std::string& section,
             const PluginEntry& entry, std::map<std::string, const YamlNode*>& given) {
  const auto& schema = entry.schema();
  for (std::size_t i = 0; i < map.entries.size(); ++i) {
    const auto& [key, value] = map.entries[i];
    if (prefix.empty() && key == "plugin") continue;
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (find_spec(name, schema)) {
      given[name] = value.get();
    } else if (value->kind == YamlNode::Kind::Map && is_prefix_of_some(name, schema)) {
      flatten(*value, name, section, entry, given);
    } else {
      fail(map.key_locations[i], section + "." + name,
           fmt::format("unknown parameter of {} plugin '{}'{}; it accepts: {} (see `rguard plugins {}`)",
                       to_string(entry.kind), entry.name, did_you_mean(name, schema_names(schema)),
                       join(schema_names(schema)), to_string(entry.kind)));
    }
  }
}

StageSpec resolve_stage(const YamlNode& node, PluginKind kind, const std::string& section,
                        const PluginCatalog& catalog) {
  const std::string available = join(catalog.names(kind));
  if (node.kind != YamlNode::Kind::Map)
    fail(node.location, section,
         fmt::format("expected a mapping like {{plugin: <name>, ...}}, got {}; {} plugins: {}", shown(node),
                     to_string(kind), available));
  auto plugin = node.find("plugin");
  if (!plugin)
    fail(node.location, section,
         fmt::format("missing key 'plugin'; {} plugins: {}", to_string(kind), available));
  if (plugin->kind != YamlNode::Kind::Scalar)
    fail(plugin->location, section + ".plugin", fmt::format("expected a plugin name, got {}", shown(*plugin)));

  StageSpec stage;
  stage.kind = kind;
  stage.section = section;
  stage.plugin = plugin->value;
  stage.location = node.location;
  stage.entry = catalog.find(kind, stage.plugin);
  if (!stage.entry) {
    std::string other_kind;
    for (PluginKind k : kAllPluginKinds)
      if (k != kind && catalog.find(k, stage.plugin)) other_kind = fmt::format(" ('{}' is a {} plugin)", stage.plugin, to_string(k));
    fail(plugin->location, section + ".plugin",
         fmt::format("unknown {} plugin '{}'{}{}; available {} plugins: {} (`rguard plugins` lists them; "
                     "RGUARD_PLUGIN_PATH adds folders to search)",
                     to_string(kind), stage.plugin, other_kind, did_you_mean(stage.plugin, catalog.names(kind)),
                     to_string(kind), available));
  }

  std::map<std::string, const YamlNode*> given;
  flatten(node, "", section, *stage.entry, given);
  for (const ParamSpec& spec : stage.entry->schema()) {
    const std::string key = section + "." + spec.name;
    if (auto it = given.find(spec.name); it != given.end()) {
      stage.params.set(spec.name, convert(spec, *it->second, key));
    } else if (spec.default_value) {
      stage.params.set(spec.name, convert_default(spec, key));
    } else {
      fail(node.location, section,
           fmt::format("missing required parameter '{}' ({}: {})", spec.name, expected_phrase(spec), spec.doc));
    }
  }
  return stage;
}

// ---- overrides and ${...} references ------------------------------------------------

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::optional<std::size_t> parse_index(const std::string& text) {
  std::size_t index = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), index);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return index;
}

// The node at `path`, or nullptr.
YamlNodePtr lookup(const YamlNodePtr& root, const std::string& path) {
  YamlNodePtr node = root;
  for (const std::string& part : split_path(path)) {
    if (node->kind == YamlNode::Kind::Map) {
      node = node->find(part);
    } else if (node->kind == YamlNode::Kind::Sequence) {
      auto index = parse_index(part);
      node = index && *index < node->items.size() ? node->items[*index] : nullptr;
    } else {
      node = nullptr;
    }
    if (!node) return nullptr;
  }
  return node;
}

void apply_override(const YamlNodePtr& root, const std::string& text) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error(fmt::format("--set '{}': expected dotted.key=value, e.g. --set noise.sigma=0.5", text));
  const std::string path = text.substr(0, eq);
  const SourceLocation where{"--set", 0, 0};
  YamlNodePtr value = parse_yaml(text.substr(eq + 1), where.file);
  // Locations inside the value point at the command line, not at a line of a file.
  std::vector<YamlNodePtr> todo{value};
  while (!todo.empty()) {
    auto node = todo.back();
    todo.pop_back();
    node->location = where;
    node->key_locations.assign(node->entries.size(), where);
    for (auto& item : node->items) todo.push_back(item);
    for (auto& entry : node->entries) todo.push_back(entry.second);
  }

  const auto parts = split_path(path);
  YamlNodePtr node = root;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const std::string& part = parts[i];
    if (node->kind == YamlNode::Kind::Null) node->kind = YamlNode::Kind::Map;
    if (node->kind == YamlNode::Kind::Sequence) {
      auto index = parse_index(part);
      if (!index || *index >= node->items.size())
        throw Error(fmt::format("--set {}: '{}' is not an index of the list at {} ({} items)", path, part,
                                node->location.str(), node->items.size()));
      if (last) node->items[*index] = value; else node = node->items[*index];
      continue;
    }
    if (node->kind != YamlNode::Kind::Map)
      throw Error(fmt::format("--set {}: '{}' is inside a scalar (at {})", path, part, node->location.str()));
    auto child = node->find(part);
    if (last) {
      bool replaced = false;
      for (auto& entry : node->entries)
        if (entry.first == part) { entry.second = value; replaced = true; }
      if (!replaced) {
        node->entries.emplace_back(part, value);
        node->key_locations.push_back(where);
      }
    } else {
      if (!child) {
        child = std::make_shared<YamlNode>();
        child->kind = YamlNode::Kind::Map;
        child->location = where;
        node->entries.emplace_back(part, child);
        node->key_locations.push_back(where);
      }
      node = child;
    }
  }
}

// Replaces ${dotted.key} in scalars by the referenced value; a scalar that is exactly one
// reference takes the referenced node whole (so lists can be shared).
void interpolate(const YamlNodePtr& root, const YamlNodePtr& node, int depth) {
  if (depth > 16) throw Error(fmt::format("{}: ${{...}} references nest too deep (a cycle?)", node->location.str()));
  for (auto& item : node->items) interpolate(root, item, depth);
  for (auto& entry : node->entries) interpolate(root, entry.second, depth);
  if (node->kind != YamlNode::Kind::Scalar) return;
  for (int round = 0; node->kind == YamlNode::Kind::Scalar && node->value.find("${") != std::string::npos; ++round) {
    if (round > 16) throw Error(fmt::format("{}: ${{...}} references form a cycle", node->location.str()));
    const std::size_t open = node->value.find("${");
    const std::size_t close = node->value.find('}', open);
    if (close == std::string::npos)
      throw Error(fmt::format("{}: unterminated ${{ in '{}'", node->location.str(), node->value));
    const std::string path = node->value.substr(open + 2, close - open - 2);
    YamlNodePtr target = lookup(root, path);
    if (!target)
      throw Error(fmt::format("{}: '${{{}}}' refers to a key that does not exist; write the full dotted "
                              "path from the top, e.g. ${{noise.sigma}}",
                              node->location.str(), path));
    interpolate(root, target, depth + 1);
    const SourceLocation where = node->location;
    if (open == 0 && close + 1 == node->value.size()) {
      *node = *target->clone();  // keeps the target's location: errors point where the value was written
    } else if (target->kind == YamlNode::Kind::Scalar) {
      node->value = node->value.substr(0, open) + target->value + node->value.substr(close + 1);
    } else {
      throw Error(fmt::format("{}: '${{{}}}' is {}; only a whole value can refer to it", where.str(), path,
                              to_string(target->kind)));
    }
  }
}

// ---- the resolved spec as YAML ------------------------------------------------------

void emit_value(YAML::Emitter& out, const ParamValue& value) {
  if (const auto* ints = std::get_if<std::vector<std::int64_t>>(&value)) {
    out << YAML::Flow << YAML::BeginSeq;
    for (auto i : *ints) out << std::to_string(i);
    out << YAML::EndSeq;
  } else if (const auto* floats = std::get_if<std::vector<double>>(&value)) {
    out << YAML::Flow << YAML::BeginSeq;
    for (double d : *floats) out << to_yaml_text(d);
    out << YAML::EndSeq;
  } else {
    out << to_yaml_text(value);
  }
}

struct EmitTree {
  std::vector<std::pair<std::string, std::variant<const ParamValue*, EmitTree>>> children;
  void insert(const std::vector<std::string>& parts, std::size_t i, const ParamValue* value) {
    if (i + 1 == parts.size()) {
      children.emplace_back(parts[i], value);
      return;
    }
    for (auto& [name, child] : children)
      if (name == parts[i] && std::holds_alternative<EmitTree>(child)) {
        std::get<EmitTree>(child).insert(parts, i + 1, value);
        return;
      }
    children.emplace_back(parts[i], EmitTree{});
    std::get<EmitTree>(children.back().second).insert(parts, i + 1, value);
  }
  void emit(YAML::Emitter& out) const {
    for (const auto& [name, child] : children) {
      out << YAML::Key << name << YAML::Value;
      if (const auto* leaf = std::get_if<const ParamValue*>(&child)) {
        emit_value(out, **leaf);
      } else {
        out << YAML::BeginMap;
        std::get<EmitTree>(child).emit(out);
        out << YAML::EndMap;
      }
    }
  }
};

void emit_stage(YAML::Emitter& out, const StageSpec& stage) {
  out << YAML::BeginMap << YAML::Key << "plugin" << YAML::Value << stage.plugin;
  EmitTree tree;
  for (const ParamSpec& spec : stage.entry->schema())
    tree.insert(split_path(spec.name), 0, &stage.params.values().at(spec.name));
  tree.emit(out);
  out << YAML::EndMap;
}

std::string emit_resolved(const PipelineSpec& spec) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << spec.name;
  out << YAML::Key << "seed" << YAML::Value << std::to_string(spec.seed);
  out << YAML::Key << "threads" << YAML::Value << std::to_string(spec.threads);
  out << YAML::Key << "device" << YAML::Value << spec.device;
  out << YAML::Key << "output" << YAML::Value << spec.output_root;
  out << YAML::Key << "cache" << YAML::Value << spec.cache_root;
  for (const auto* stage : {&spec.dataset, &spec.backbone, &spec.noise, &spec.certifier}) {
    out << YAML::Key << stage->section << YAML::Value;
    emit_stage(out, *stage);
  }
  for (const auto* list : {&spec.attacks, &spec.metrics}) {
    out << YAML::Key << (list == &spec.attacks ? "attacks" : "metrics") << YAML::Value << YAML::BeginSeq;
    for (const auto& stage : *list) emit_stage(out, stage);
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

// ---- top level ---------------------------------------------------------------------

const std::vector<ParamSpec>& top_level_scalars() {
  static const std::vector<ParamSpec> specs{
      {.name = "name", .type = ParamType::String, .default_value = "", .doc = "run name; default: the file's stem"},
      {.name = "seed", .type = ParamType::Int, .default_value = "0", .doc = "seed of every random stream", .min = 0},
      {.name = "threads", .type = ParamType::Int, .default_value = "0", .doc = "LibTorch threads; 0 = all cores", .min = 0},
      {.name = "device", .type = ParamType::String, .default_value = "cpu", .doc = "cpu, cuda or cuda:N"},
      {.name = "output", .type = ParamType::String, .default_value = "results", .doc = "output root"},
      {.name = "cache", .type = ParamType::String, .default_value = "", .doc = "cache folder; default <output>/cache"},
  };
  return specs;
}

}  // namespace

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

std::string StageSpec::canonical() const {
  std::string text = fmt::format("{}@{}{{", plugin, entry ? entry->version : "?");
  for (const auto& [name, value] : params.values()) text += fmt::format("{}={};", name, to_yaml_text(value));
  return text + "}";
}

PipelineSpec resolve_pipeline_spec(const YamlNodePtr& parsed, const std::string& file,
                                   const std::vector<std::string>& overrides, const PluginCatalog& catalog) {
  YamlNodePtr root = parsed->clone();
  if (root->kind == YamlNode::Kind::Null) root->kind = YamlNode::Kind::Map;
  if (root->kind != YamlNode::Kind::Map)
    fail(root->location, "pipeline", fmt::format("expected a mapping of sections, got {}", shown(*root)));
  for (const auto& text : overrides) apply_override(root, text);
  interpolate(root, root, 0);

  static const std::vector<std::string> sections{"name",  "seed",    "threads",   "device",  "output", "cache",
                                                 "dataset", "backbone", "noise", "certifier", "attacks", "metrics",
                                                 "sweep"};
  for (std::size_t i = 0; i < root->entries.size(); ++i) {
    const std::string& key = root->entries[i].first;
    if (std::find(sections.begin(), sections.end(), key) == sections.end())
      fail(root->key_locations[i], key,
           fmt::format("unknown section{}; a pipeline has: {}", did_you_mean(key, sections), join(sections)));
  }
  if (auto sweep = root->find("sweep"))
    fail(sweep->location, "sweep",
         "sweeps are not supported by this version yet; run one point per spec, varying it with --set");

  PipelineSpec spec;
  spec.file = file;
  Params top;
  for (const ParamSpec& s : top_level_scalars()) {
    if (auto node = root->find(s.name)) top.set(s.name, convert(s, *node, s.name));
    else top.set(s.name, convert_default(s, s.name));
  }
  spec.name = top.get_string("name");
  if (spec.name.empty()) spec.name = std::filesystem::path(file).stem().string();
  if (spec.name.empty() || spec.name.find_first_of("/\\") != std::string::npos || spec.name[0] == '.')
    fail(root->find("name") ? root->find("name")->location : root->location, "name",
         fmt::format("'{}' cannot name an output folder; use letters, digits, '-', '_'", spec.name));
  spec.seed = static_cast<std::uint64_t>(top.get_int("seed"));
  spec.threads = top.get_int("threads");
  spec.device = top.get_string("device");
  if (spec.device != "cpu" && spec.device.rfind("cuda", 0) != 0)
    fail(root->find("device")->location, "device", fmt::format("expected cpu, cuda or cuda:N, got '{}'", spec.device));
  spec.output_root = top.get_string("output");
  spec.cache_root = top.get_string("cache");
  if (spec.cache_root.empty()) spec.cache_root = (std::filesystem::path(spec.output_root) / "cache").string();

  auto required = [&](const char* section, PluginKind kind) {
    auto node = root->find(section);
    if (!node)
      fail(root->location, section,
           fmt::format("missing section; add e.g. '{}: {{plugin: <name>}}' ({} plugins: {})", section,
                       to_string(kind), join(catalog.names(kind))));
    return resolve_stage(*node, kind, section, catalog);
  };
  // Noise and certifier first: other sections usually refer to their values (${noise.sigma}),
  // and an error is clearest under the key where the value was written.
  spec.dataset = required("dataset", PluginKind::Dataset);
  spec.noise = required("noise", PluginKind::Noise);
  spec.certifier = required("certifier", PluginKind::Certifier);
  spec.backbone = required("backbone", PluginKind::Backbone);
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
  spec.metrics = list("metrics", PluginKind::Metric);
  spec.resolved_yaml = emit_resolved(spec);
  return spec;
}

PipelineSpec load_pipeline_spec(const std::string& file, const std::vector<std::string>& overrides,
                                const PluginCatalog& catalog) {
  return resolve_pipeline_spec(parse_yaml_file(file), file, overrides, catalog);
}

}  // namespace rguard
