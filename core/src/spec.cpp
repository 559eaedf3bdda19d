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

bool valid_utf8(const std::string& text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k)
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) return false;
    i += length;
  }
  return true;
}

// `text` quoted for a message: bytes that are not printable ASCII as \xNN, at most 60 shown.
std::string printable(const std::string& text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < 60; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += c >= 0x20 && c < 0x7f ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  }
  return out + (text.size() > 60 ? fmt::format("...' ({} bytes)", text.size()) : "'");
}

std::string shown(const YamlNode& node) {
  if (node.kind == YamlNode::Kind::Scalar) return fmt::format("'{}'", node.value);
  return to_string(node.kind);
}

void check_range(const ParamSpec& spec, double v, const YamlNode& node, const std::string& key, bool element) {
  const bool low = spec.min_exclusive ? !(v > spec.min) : v < spec.min;
  const bool high = spec.max_exclusive ? !(v < spec.max) : v > spec.max;
  if (low || high)
    fail(node.location, key,
         fmt::format("expected {}, got {} ({})", expected_phrase(spec, element), node.value, spec.doc));
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

// A relative path written in a spec file names something beside that file, wherever rguard
// is started from; one from the command line (no line number) is relative to the working
// directory. Either way plugins and cache keys see it absolute.
std::string resolve_path(const std::string& text, const SourceLocation& where) {
  if (text.empty()) return text;  // "none" (e.g. resnet's weights)
  namespace fs = std::filesystem;
  fs::path path(text);
  if (path.is_relative() && where.line > 0) path = fs::path(where.file).parent_path() / path;
  return fs::absolute(path).lexically_normal().string();
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
    case ParamType::Path: {
      if (node.kind != YamlNode::Kind::Scalar)
        fail(node.location, key, fmt::format("expected a path, got {}", shown(node)));
      return resolve_path(node.value, node.location);
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
  if ((spec.type == ParamType::String || spec.type == ParamType::Path) && std::string(spec.default_value).empty())
    return std::string();
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

// `owner` names who accepts the keys in messages ("noise plugin 'gaussian'", "section audit").
void flatten(const YamlNode& map, const std::string& prefix, const std::string& section, const std::string& owner,
             const std::string& hint, const std::vector<ParamSpec>& schema, std::map<std::string, const YamlNode*>& given) {
  for (std::size_t i = 0; i < map.entries.size(); ++i) {
    const auto& [key, value] = map.entries[i];
    if (prefix.empty() && key == "plugin") continue;
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (find_spec(name, schema)) {
      given[name] = value.get();
    } else if (value->kind == YamlNode::Kind::Map && is_prefix_of_some(name, schema)) {
      flatten(*value, name, section, owner, hint, schema, given);
    } else {
      fail(map.key_locations[i], section + "." + name,
           fmt::format("unknown parameter of {}{}; it accepts: {}{}", owner, did_you_mean(name, schema_names(schema)),
                       join(schema_names(schema)), hint));
    }
  }
}

// Validates a mapping's keys against `schema`; every parameter gets its value or default.
Params resolve_params(const YamlNode& node, const std::vector<ParamSpec>& schema, const std::string& section,
                      const std::string& owner, const std::string& hint) {
  std::map<std::string, const YamlNode*> given;
  flatten(node, "", section, owner, hint, schema, given);
  Params params;
  for (const ParamSpec& spec : schema) {
    const std::string key = section + "." + spec.name;
    if (auto it = given.find(spec.name); it != given.end()) {
      params.set(spec.name, convert(spec, *it->second, key));
    } else if (spec.default_value) {
      params.set(spec.name, convert_default(spec, key));
    } else {
      fail(node.location, section,
           fmt::format("missing required parameter '{}' ({}: {})", spec.name, expected_phrase(spec), spec.doc));
    }
  }
  return params;
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

  stage.params = resolve_params(node, stage.entry->schema(), section,
                                fmt::format("{} plugin '{}'", to_string(kind), stage.plugin),
                                fmt::format(" (see `rguard plugins {}`)", to_string(kind)));
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

// Marks every node of a value as coming from `where` (the command line, a sweep).
void relocate(const YamlNodePtr& value, const SourceLocation& where) {
  std::vector<YamlNodePtr> todo{value};
  while (!todo.empty()) {
    auto node = todo.back();
    todo.pop_back();
    node->location = where;
    node->key_locations.assign(node->entries.size(), where);
    for (auto& item : node->items) todo.push_back(item);
    for (auto& entry : node->entries) todo.push_back(entry.second);
  }
}

// Sets the node at dotted `path` (creating mappings on the way; list items by index).
void set_path(const YamlNodePtr& root, const std::string& path, const YamlNodePtr& value, const std::string& origin) {
  const auto parts = split_path(path);
  YamlNodePtr node = root;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const std::string& part = parts[i];
    if (node->kind == YamlNode::Kind::Null) node->kind = YamlNode::Kind::Map;
    if (node->kind == YamlNode::Kind::Sequence) {
      auto index = parse_index(part);
      if (!index || *index >= node->items.size())
        throw Error(fmt::format("{} {}: '{}' is not an index of the list at {} ({} items)", origin, path, part,
                                node->location.str(), node->items.size()));
      if (last) node->items[*index] = value; else node = node->items[*index];
      continue;
    }
    if (node->kind != YamlNode::Kind::Map)
      throw Error(fmt::format("{} {}: '{}' is inside a scalar (at {})", origin, path, part, node->location.str()));
    auto child = node->find(part);
    if (last) {
      bool replaced = false;
      for (auto& entry : node->entries)
        if (entry.first == part) { entry.second = value; replaced = true; }
      if (!replaced) {
        node->entries.emplace_back(part, value);
        node->key_locations.push_back(value->location);
      }
    } else {
      if (!child) {
        child = std::make_shared<YamlNode>();
        child->kind = YamlNode::Kind::Map;
        child->location = value->location;
        node->entries.emplace_back(part, child);
        node->key_locations.push_back(value->location);
      }
      node = child;
    }
  }
}

struct Override {
  std::string path;
  std::vector<std::string> values;  // more than one: a sweep axis ("--set noise.sigma=0.12,0.25")
};

// Splits "a.b=v1,v2" at top-level commas (not inside brackets, braces or quotes).
Override parse_override(const std::string& text) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error(fmt::format("--set '{}': expected dotted.key=value, e.g. --set noise.sigma=0.5", text));
  Override o{text.substr(0, eq), {}};
  const std::string rest = text.substr(eq + 1);
  int depth = 0;
  char quote = 0;
  std::string current;
  for (char c : rest) {
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 0) {
      o.values.push_back(current);
      current.clear();
      continue;
    }
    current += c;
  }
  o.values.push_back(current);
  return o;
}

YamlNodePtr override_value(const std::string& text) {
  const SourceLocation where{"--set", 0, 0};
  YamlNodePtr value = parse_yaml(text, where.file);
  relocate(value, where);
  return value;
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
      if (node->value.size() > 65536)
        throw Error(fmt::format("{}: ${{...}} references expand to more than 64 KiB", where.str()));
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
  out << YAML::Key << "audit" << YAML::Value << YAML::BeginMap;
  for (const ParamSpec& p : audit_param_specs()) {
    out << YAML::Key << p.name << YAML::Value;
    emit_value(out, spec.audit.values().at(p.name));
  }
  out << YAML::EndMap;
  for (const auto* list : {&spec.attacks, &spec.metrics}) {
    out << YAML::Key << (list == &spec.attacks ? "attacks" : "metrics") << YAML::Value << YAML::BeginSeq;
    for (const auto& stage : *list) emit_stage(out, stage);
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

// ---- top level ---------------------------------------------------------------------

}  // namespace

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
      {.name = "seed", .type = ParamType::Int, .default_value = "0", .doc = "seed of every random stream", .min = 0},
      {.name = "threads", .type = ParamType::Int, .default_value = "0", .doc = "LibTorch threads; 0 = all cores",
       .min = 0, .max = 1024},
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

namespace {

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> sections{"name",  "seed",    "threads",   "device",  "output", "cache",
                                                 "dataset", "backbone", "noise", "certifier", "attacks", "audit", "metrics",
                                                 "sweep"};
  return sections;
}

YamlNodePtr prepared_root(const YamlNodePtr& parsed) {
  YamlNodePtr root = parsed->clone();
  if (root->kind == YamlNode::Kind::Null) root->kind = YamlNode::Kind::Map;
  if (root->kind != YamlNode::Kind::Map)
    fail(root->location, "pipeline", fmt::format("expected a mapping of sections, got {}", shown(*root)));
  const auto& sections = section_names();
  for (std::size_t i = 0; i < root->entries.size(); ++i) {
    const std::string& key = root->entries[i].first;
    if (std::find(sections.begin(), sections.end(), key) == sections.end())
      fail(root->key_locations[i], key,
           fmt::format("unknown section{}; a pipeline has: {}", did_you_mean(key, sections), join(sections)));
  }
  return root;
}

// Why `name` cannot be a folder name (of the outputs, and of cache/uses/<name>.json), or "".
std::string unusable_run_name(const std::string& name) {
  if (name.empty()) return "it is empty";
  if (name.size() > 200) return fmt::format("it is {} bytes long, more than file systems allow with a suffix", name.size());
  if (name.find_first_of("/\\") != std::string::npos) return "it contains a path separator";
  if (name[0] == '.') return "it starts with '.'";
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return "it contains a control character";
  if (!valid_utf8(name)) return "it is not valid UTF-8";
  return "";
}

// Validates one point's tree (overrides applied, no sweep block).
PipelineSpec validate_point(const YamlNodePtr& root, const std::string& file, const PluginCatalog& catalog) {
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
         fmt::format("{} cannot name an output folder: {}; use letters, digits, '-', '_' (at most 200 bytes)",
                     printable(spec.name), why));
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
    StageSpec stage = resolve_stage(*node, kind, section, catalog);
    // Failures of the stage's plugin point at the line where the section begins.
    for (std::size_t i = 0; i < root->entries.size(); ++i)
      if (root->entries[i].first == section) stage.location = root->key_locations[i];
    return stage;
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
  spec.resolved_yaml = emit_resolved(spec);
  return spec;
}

// ---- sweeps ------------------------------------------------------------------------

using Assignment = std::vector<std::pair<std::string, YamlNodePtr>>;

struct Axis {
  std::string path;
  std::vector<YamlNodePtr> values;
};

struct Sweep {
  std::vector<Axis> grid, zip;
  std::vector<Assignment> include;
};

std::vector<Axis> parse_axes(const YamlNode& map, const std::string& where) {
  if (map.kind != YamlNode::Kind::Map)
    fail(map.location, where, fmt::format("expected a mapping of dotted keys to lists, got {}", shown(map)));
  std::vector<Axis> axes;
  for (const auto& [key, list] : map.entries) {
    if (list->kind != YamlNode::Kind::Sequence || list->items.empty())
      fail(list->location, where + "." + key, fmt::format("expected a non-empty list of values, got {}", shown(*list)));
    axes.push_back({key, list->items});
  }
  return axes;
}

Sweep parse_sweep(const YamlNode& node) {
  static const std::vector<std::string> keys{"grid", "zip", "include"};
  if (node.kind != YamlNode::Kind::Map)
    fail(node.location, "sweep", fmt::format("expected a mapping with grid, zip or include, got {}", shown(node)));
  Sweep sweep;
  for (std::size_t i = 0; i < node.entries.size(); ++i) {
    const auto& [key, value] = node.entries[i];
    if (key == "grid") {
      sweep.grid = parse_axes(*value, "sweep.grid");
    } else if (key == "zip") {
      sweep.zip = parse_axes(*value, "sweep.zip");
      for (const auto& axis : sweep.zip)
        if (axis.values.size() != sweep.zip.front().values.size())
          fail(value->location, "sweep.zip",
               fmt::format("zipped lists must have one length: '{}' has {}, '{}' has {}", sweep.zip.front().path,
                           sweep.zip.front().values.size(), axis.path, axis.values.size()));
    } else if (key == "include") {
      if (value->kind != YamlNode::Kind::Sequence)
        fail(value->location, "sweep.include", fmt::format("expected a list of mappings, got {}", shown(*value)));
      for (const auto& item : value->items) {
        if (item->kind != YamlNode::Kind::Map || item->entries.empty())
          fail(item->location, "sweep.include", fmt::format("expected a mapping {{dotted.key: value}}, got {}", shown(*item)));
        sweep.include.emplace_back(item->entries.begin(), item->entries.end());
      }
    } else {
      fail(node.key_locations[i], "sweep." + key,
           fmt::format("unknown key{}; a sweep has: grid, zip, include", did_you_mean(key, keys)));
    }
  }
  return sweep;
}

std::string value_text(const YamlNode& node) {
  if (node.kind == YamlNode::Kind::Scalar) return node.value;
  std::vector<std::string> parts;
  for (const auto& item : node.items) parts.push_back(value_text(*item));
  return fmt::format("[{}]", fmt::join(parts, ","));
}

// Replaces the axis of `path` (or adds one); nullopt values remove it.
void set_axis(std::vector<Axis>& axes, const std::string& path, std::optional<std::vector<YamlNodePtr>> values) {
  auto it = std::find_if(axes.begin(), axes.end(), [&](const Axis& a) { return a.path == path; });
  if (!values) {
    if (it != axes.end()) axes.erase(it);
  } else if (it != axes.end()) {
    it->values = *values;
  } else {
    axes.push_back({path, *values});
  }
}

std::string indent(const std::string& text, const std::string& prefix) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!line.empty()) out += prefix + line;
    out += "\n";
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}


// `--set sweep...=v` edits the sweep block itself, before it is read. In sweep.grid.KEY and
// sweep.zip.KEY the KEY is one dotted key of the spec (sweep.grid.noise.sigma=[0.25,0.5]).
void set_sweep_path(const YamlNodePtr& root, const std::string& path, const YamlNodePtr& value) {
  for (const std::string axes : {"sweep.grid.", "sweep.zip."}) {
    if (path.rfind(axes, 0) != 0 || path.size() == axes.size()) continue;
    const std::string table = axes.substr(0, axes.size() - 1);
    YamlNodePtr node = lookup(root, table);
    if (!node || node->kind != YamlNode::Kind::Map) {
      node = std::make_shared<YamlNode>();
      node->kind = YamlNode::Kind::Map;
      node->location = value->location;
      set_path(root, table, node, "--set");
    }
    const std::string key = path.substr(axes.size());
    for (auto& entry : node->entries)
      if (entry.first == key) {
        entry.second = value;
        return;
      }
    node->entries.emplace_back(key, value);
    node->key_locations.push_back(value->location);
    return;
  }
  set_path(root, path, value, "--set");
}

// A key may be swept by the grid or by the zip, not both: each point would name one value
// and certify the other.
void check_axes_disjoint(const Sweep& sweep, const SourceLocation& where) {
  for (const auto& axis : sweep.zip)
    for (const auto& other : sweep.grid)
      if (axis.path == other.path)
        fail(where, "sweep",
             fmt::format("'{}' is both in sweep.grid and in sweep.zip; sweep it in one of them (a zip of one key "
                         "is a grid axis)",
                         axis.path));
}

}  // namespace

ExperimentSpec resolve_experiment_spec(const YamlNodePtr& parsed, const std::string& file,
                                       const std::vector<std::string>& overrides, const PluginCatalog& catalog) {
  YamlNodePtr base = prepared_root(parsed);
  std::vector<Override> key_overrides;
  for (const auto& text : overrides) {
    Override o = parse_override(text);
    if (o.path != "sweep" && o.path.rfind("sweep.", 0) != 0) {
      key_overrides.push_back(std::move(o));
      continue;
    }
    if (o.values.size() != 1)
      throw Error(fmt::format("--set {}: a sweep is set with one YAML value, e.g. --set 'sweep.grid.noise.sigma=[0.25,0.5]' "
                              "(or --set noise.sigma=0.25,0.5)",
                              o.path));
    set_sweep_path(base, o.path, override_value(o.values.front()));
  }
  Sweep sweep;
  bool swept = false;
  for (std::size_t i = 0; i < base->entries.size(); ++i)
    if (base->entries[i].first == "sweep") {
      sweep = parse_sweep(*base->entries[i].second);
      check_axes_disjoint(sweep, base->key_locations[i]);
      swept = true;
      base->entries.erase(base->entries.begin() + static_cast<std::ptrdiff_t>(i));
      base->key_locations.erase(base->key_locations.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  for (const Override& o : key_overrides) {
    if (std::any_of(sweep.zip.begin(), sweep.zip.end(), [&](const Axis& a) { return a.path == o.path; }))
      throw Error(fmt::format("--set {}: the key is zipped in the spec's sweep; edit sweep.zip instead", o.path));
    if (o.values.size() > 1) {
      std::vector<YamlNodePtr> values;
      for (const auto& v : o.values) values.push_back(override_value(v));
      set_axis(sweep.grid, o.path, values);
      swept = true;
    } else {
      set_path(base, o.path, override_value(o.values.front()), "--set");
      set_axis(sweep.grid, o.path, std::nullopt);  // a fixed value ends that sweep axis
    }
  }

  constexpr std::size_t kMaxPoints = 10000;
  std::size_t count = sweep.zip.empty() ? 1 : sweep.zip.front().values.size();
  for (const auto& axis : sweep.grid) {
    count *= axis.values.size();
    if (count > kMaxPoints)
      throw Error(fmt::format("{}: sweep: more than {} points; split the experiment", file, kMaxPoints));
  }
  std::vector<Assignment> assignments{{}};
  for (const auto& axis : sweep.grid) {
    std::vector<Assignment> next;
    for (const auto& a : assignments)
      for (const auto& v : axis.values) {
        next.push_back(a);
        next.back().emplace_back(axis.path, v);
      }
    assignments = std::move(next);
  }
  if (!sweep.zip.empty()) {
    std::vector<Assignment> next;
    for (const auto& a : assignments)
      for (std::size_t i = 0; i < sweep.zip.front().values.size(); ++i) {
        next.push_back(a);
        for (const auto& axis : sweep.zip) next.back().emplace_back(axis.path, axis.values[i]);
      }
    assignments = std::move(next);
  }
  assignments.insert(assignments.end(), sweep.include.begin(), sweep.include.end());

  ExperimentSpec experiment;
  experiment.file = file;
  experiment.swept = swept;
  for (const auto& assignment : assignments) {
    SweepPoint point;
    std::vector<std::string> parts;
    YamlNodePtr root = base->clone();
    for (const auto& [path, value] : assignment) {
      parts.push_back(fmt::format("{}={}", path, value_text(*value)));
      set_path(root, path, value->clone(), "sweep");
      point.assignment.emplace_back(path, value_text(*value));
    }
    point.name = parts.empty() ? "main" : fmt::format("{}", fmt::join(parts, ","));
    for (const auto& other : experiment.points)
      if (other.name == point.name)
        throw Error(fmt::format("{}: sweep: the point '{}' appears twice; remove the duplicate", file, point.name));
    point.spec = validate_point(root, file, catalog);
    point.spec.point = point.name;
    experiment.points.push_back(std::move(point));
  }
  const PipelineSpec& first = experiment.points.front().spec;
  for (const auto& point : experiment.points) {
    const PipelineSpec& s = point.spec;
    if (s.name != first.name || s.output_root != first.output_root || s.cache_root != first.cache_root ||
        s.threads != first.threads || s.device != first.device)
      throw Error(fmt::format("{}: sweep: name, output, cache, threads and device are settings of the whole run "
                              "and cannot vary between points",
                              file));
  }
  experiment.name = first.name;
  experiment.output_root = first.output_root;
  experiment.cache_root = first.cache_root;
  if (!swept) {
    experiment.resolved_yaml = first.resolved_yaml;
  } else {
    experiment.resolved_yaml = "# One fully resolved spec per sweep point; each is itself a valid spec.\npoints:\n";
    for (const auto& point : experiment.points)
      experiment.resolved_yaml += fmt::format("  \"{}\":\n{}", point.name, indent(point.spec.resolved_yaml, "    "));
  }
  return experiment;
}

ExperimentSpec load_experiment_spec(const std::string& file, const std::vector<std::string>& overrides,
                                    const PluginCatalog& catalog) {
  return resolve_experiment_spec(parse_yaml_file(file), file, overrides, catalog);
}

PipelineSpec resolve_pipeline_spec(const YamlNodePtr& parsed, const std::string& file,
                                   const std::vector<std::string>& overrides, const PluginCatalog& catalog) {
  ExperimentSpec experiment = resolve_experiment_spec(parsed, file, overrides, catalog);
  if (experiment.points.size() != 1)
    throw Error(fmt::format("{}: the spec sweeps {} points; expected a single pipeline", file, experiment.points.size()));
  return experiment.points.front().spec;
}

PipelineSpec load_pipeline_spec(const std::string& file, const std::vector<std::string>& overrides,
                                const PluginCatalog& catalog) {
  return resolve_pipeline_spec(parse_yaml_file(file), file, overrides, catalog);
}

}  // namespace rguard
