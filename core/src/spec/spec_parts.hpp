// The pieces of spec validation shared by its files (internal to rguard_core):
//   spec_params.cpp   scalars and plugin parameters against their schemas
//   spec_tree.cpp     dotted paths, --set overrides and ${...} references on the YAML tree
//   spec_emit.cpp     the resolved spec as YAML
//   spec.cpp          one pipeline: sections, top-level settings, validation of a point
//   spec_sweep.cpp    sweeps: the points of an experiment
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "spec/spec.hpp"

namespace rguard::spec_detail {

// spec_params.cpp
[[noreturn]] void fail(const SourceLocation& where, const std::string& key, const std::string& what);
std::string join(const std::vector<std::string>& words);  // "a, b, c" or "(none found)"
std::string shown(const YamlNode& node);                  // a value as a message quotes it
std::string printable(const std::string& text);           // quoted, non-printable bytes as \xNN
bool valid_utf8(const std::string& text);
ParamValue convert(const ParamSpec& spec, const YamlNode& node, const std::string& key);
ParamValue convert_default(const ParamSpec& spec, const std::string& key);
Params resolve_params(const YamlNode& node, const std::vector<ParamSpec>& schema, const std::string& section,
                      const std::string& owner, const std::string& hint);
StageSpec resolve_stage(const YamlNode& node, PluginKind kind, const std::string& section, const PluginCatalog& catalog);

// spec_tree.cpp
std::vector<std::string> split_path(const std::string& path);          // "a.b.0" -> {"a", "b", "0"}
YamlNodePtr lookup(const YamlNodePtr& root, const std::string& path);  // the node at a dotted path, or nullptr
// Sets the node at a dotted path (creating mappings on the way; list items by index).
void set_path(const YamlNodePtr& root, const std::string& path, const YamlNodePtr& value, const std::string& origin);
struct Override {
  std::string path;
  std::vector<std::string> values;  // more than one: a sweep axis ("--set noise.sigma=0.12,0.25")
};
Override parse_override(const std::string& text);  // "a.b=v1,v2", split at top-level commas
YamlNodePtr override_value(const std::string& text);
// Replaces ${dotted.key} in scalars by the referenced value.
void interpolate(const YamlNodePtr& root, const YamlNodePtr& node, int depth);

// spec_emit.cpp
std::string emit_resolved(const PipelineSpec& spec);
std::string emit_resolved_points(const std::vector<SweepPoint>& points);  // a sweep's: {points: {<name>: <spec>}}

// spec.cpp
YamlNodePtr prepared_root(const YamlNodePtr& parsed);  // a copy, its sections checked
// Validates one point's tree (overrides applied, no sweep block).
PipelineSpec validate_point(const YamlNodePtr& root, const std::string& file, const PluginCatalog& catalog);

}  // namespace rguard::spec_detail
