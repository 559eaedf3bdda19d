// A YAML document as a tree that remembers where every node came from, built from
// yaml-cpp's event parser so that duplicate keys (which yaml-cpp's Node API accepts
// silently, jbeder/yaml-cpp #60 and #826) and merge keys are refused with file:line:column.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rguard/error.hpp"

namespace rguard {

struct YamlNode;
using YamlNodePtr = std::shared_ptr<YamlNode>;

struct YamlNode {
  enum class Kind { Null, Scalar, Sequence, Map };
  Kind kind = Kind::Null;
  std::string value;   // Scalar
  bool quoted = false;  // Scalar written in quotes: always a string
  std::vector<YamlNodePtr> items;  // Sequence
  std::vector<std::pair<std::string, YamlNodePtr>> entries;  // Map, in file order
  std::vector<SourceLocation> key_locations;  // Map: where each key was written
  SourceLocation location;

  YamlNodePtr find(const std::string& key) const;  // Map lookup, nullptr if absent
  YamlNodePtr clone() const;
};

const char* to_string(YamlNode::Kind kind);

// Parses one YAML document. `source_name` is used in locations; throws rguard::Error.
YamlNodePtr parse_yaml(const std::string& text, const std::string& source_name);
YamlNodePtr parse_yaml_file(const std::string& path);

}  // namespace rguard
