// Dotted paths into the YAML tree, --set overrides and ${...} references.
#include "spec/spec_parts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <variant>

namespace rguard::spec_detail {

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

}  // namespace rguard::spec_detail
