// The resolved spec as YAML: every default filled in, overrides applied.
#include <yaml-cpp/emitter.h>

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

void emit_spec(YAML::Emitter& out, const PipelineSpec& spec) {
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << spec.name;
  out << YAML::Key << "seed" << YAML::Value << std::to_string(spec.seed);
  out << YAML::Key << "threads" << YAML::Value << std::to_string(spec.threads);
  out << YAML::Key << "device" << YAML::Value << spec.device;
  out << YAML::Key << "output" << YAML::Value << spec.output_root;
  out << YAML::Key << "cache" << YAML::Value << spec.cache_root;
  for (const auto* stage : {&spec.dataset, &spec.backbone, spec.denoiser ? &*spec.denoiser : nullptr, &spec.noise,
                            &spec.certifier}) {
    if (!stage) continue;
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
}

std::string emit_resolved(const PipelineSpec& spec) {
  YAML::Emitter out;
  emit_spec(out, spec);
  return std::string(out.c_str()) + "\n";
}

// Point names are the swept values as written, so they may hold anything a YAML scalar
// can: always double-quoted (yaml-cpp escapes quotes, backslashes and control
// characters), a name reads back as itself.
std::string emit_resolved_points(const std::vector<SweepPoint>& points) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "points" << YAML::Value << YAML::BeginMap;
  for (const SweepPoint& point : points) {
    out << YAML::Key << YAML::DoubleQuoted << point.name << YAML::Value;
    emit_spec(out, point.spec);
  }
  out << YAML::EndMap << YAML::EndMap;
  return "# One fully resolved spec per sweep point; each is itself a valid spec.\n" + std::string(out.c_str()) + "\n";
}

}  // namespace rguard::spec_detail
