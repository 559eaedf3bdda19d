// Scalars and plugin parameters checked against their schemas: every message names
// file:line:column, the key, what was expected and what was got.
#include "spec/spec_parts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <variant>

namespace rguard::spec_detail {

namespace {
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

}  // namespace

[[noreturn]] void fail(const SourceLocation& where, const std::string& key, const std::string& what) {
  throw Error(fmt::format("{}: {}: {}", where.str(), key, what));
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
  if (node.kind == YamlNode::Kind::Scalar && node.quoted)
    return fmt::format("the quoted string '{}' (remove the quotes for a number or a boolean)", node.value);
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

double scalar_number(const ParamSpec& spec, const YamlNode& node, const std::string& key, bool element = false) {
  std::optional<double> value;
  if (node.kind == YamlNode::Kind::Scalar && !node.quoted) value = parse_number(node.value);
  if (!value)
    fail(node.location, key, fmt::format("expected {}, got {}", expected_phrase(spec, element), shown(node)));
  check_range(spec, *value, node, key, element);
  return *value;
}

// Integers stay integers: never rounded through a double (a seed of 2^53 + 1 is kept).
std::int64_t scalar_integer(const ParamSpec& spec, const YamlNode& node, const std::string& key, bool element = false) {
  std::optional<std::int64_t> value;
  if (node.kind == YamlNode::Kind::Scalar && !node.quoted) value = parse_int(node.value);
  if (!value)
    fail(node.location, key, fmt::format("expected {}, got {}", expected_phrase(spec, element), shown(node)));
  check_range(spec, static_cast<double>(*value), node, key, element);
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
    case ParamType::Int: return scalar_integer(spec, node, key);
    case ParamType::Float: return scalar_number(spec, node, key);
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
        const std::string item = fmt::format("{}[{}]", key, i);
        if (integer) ints.push_back(scalar_integer(spec, *items[i], item, true));
        else floats.push_back(scalar_number(spec, *items[i], item, true));
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

// The keys of the group `prefix` ("train" -> epochs, batch, ...); none: it is no group.
std::vector<std::string> keys_under(const std::string& prefix, const std::vector<ParamSpec>& schema) {
  std::vector<std::string> keys;
  for (const auto& spec : schema)
    if (const std::string name = spec.name; name.rfind(prefix + ".", 0) == 0) keys.push_back(name.substr(prefix.size() + 1));
  return keys;
}

const ParamSpec* find_spec(const std::string& name, const std::vector<ParamSpec>& schema) {
  for (const auto& spec : schema)
    if (name == spec.name) return &spec;
  return nullptr;
}

// Whether a mapping key of a stage is one of its parameters or a group of them.
bool accepts(const std::string& key, const std::vector<ParamSpec>& schema) {
  return find_spec(key, schema) || !keys_under(key, schema).empty();
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
    } else if (const auto inner = keys_under(name, schema); !inner.empty()) {
      if (value->kind != YamlNode::Kind::Map)
        fail(map.key_locations[i], section + "." + name,
             fmt::format("expected a mapping of keys of {} ({}), e.g. {}: {{{}: ...}}; got {}", owner, join(inner), key,
                         inner.front(),
                         value->kind == YamlNode::Kind::Scalar ? "'" + value->value + "'" : std::string(to_string(value->kind))));
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

  // A key of another plugin of this kind is most often left over from switching plugins
  // (`--set denoiser.plugin=...` keeps the section's other keys): say whose key it is.
  const auto& schema = stage.entry->schema();
  for (std::size_t i = 0; i < node.entries.size(); ++i) {
    const std::string& key = node.entries[i].first;
    if (key == "plugin" || accepts(key, schema)) continue;
    for (const auto& name : catalog.names(kind)) {
      const PluginEntry* other = catalog.find(kind, name);
      if (name == stage.plugin || !other || !accepts(key, other->schema())) continue;
      fail(node.key_locations[i], section + "." + key,
           fmt::format("'{}' is a parameter of {} plugin '{}', not of '{}' (the plugin this section names); remove "
                       "it, or name plugin '{}' (a --set of {}.plugin keeps the section's other keys); '{}' accepts: {} "
                       "(see `rguard plugins {}`)",
                       key, to_string(kind), name, stage.plugin, name, section, stage.plugin,
                       join(schema_names(schema)), to_string(kind)));
    }
  }
  stage.params = resolve_params(node, schema, section,
                                fmt::format("{} plugin '{}'", to_string(kind), stage.plugin),
                                fmt::format(" (see `rguard plugins {}`)", to_string(kind)));
  return stage;
}

}  // namespace rguard::spec_detail

namespace rguard {

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  // Case does not count: FASHION_MNIST is one step from fashion_mnist, not thirteen.
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  };
  const std::string folded = lower(word);
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t d = spec_detail::edit_distance(folded, lower(candidate));
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

}  // namespace rguard
