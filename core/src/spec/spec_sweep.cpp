// Sweeps: grid, zip and include turned into the points of an experiment.
#include "spec/spec_parts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <variant>

namespace rguard {

using namespace spec_detail;

namespace {

// ---- sweeps ------------------------------------------------------------------------

// One swept key's value at a point; `where` is where the key was written (in the sweep, or
// --set), for messages about the point's name.
struct Assigned {
  std::string path;
  YamlNodePtr value;
  SourceLocation where;
  std::string key;  // as messages name it: "sweep.grid.noise.sigma", "--set noise.sigma"
};
using Assignment = std::vector<Assigned>;

struct Axis {
  std::string path;
  std::vector<YamlNodePtr> values;
  SourceLocation where;
  std::string key;
};

struct Sweep {
  std::vector<Axis> grid, zip;
  std::vector<Assignment> include;
};

std::vector<Axis> parse_axes(const YamlNode& map, const std::string& where) {
  if (map.kind != YamlNode::Kind::Map)
    fail(map.location, where, fmt::format("expected a mapping of dotted keys to lists, got {}", shown(map)));
  std::vector<Axis> axes;
  for (std::size_t i = 0; i < map.entries.size(); ++i) {
    const auto& [key, list] = map.entries[i];
    if (list->kind != YamlNode::Kind::Sequence || list->items.empty())
      fail(list->location, where + "." + key, fmt::format("expected a non-empty list of values, got {}", shown(*list)));
    axes.push_back({key, list->items, map.key_locations[i], where + "." + key});
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
      for (std::size_t n = 0; n < value->items.size(); ++n) {
        const YamlNodePtr& item = value->items[n];
        if (item->kind != YamlNode::Kind::Map || item->entries.empty())
          fail(item->location, "sweep.include", fmt::format("expected a mapping {{dotted.key: value}}, got {}", shown(*item)));
        Assignment point;
        for (std::size_t k = 0; k < item->entries.size(); ++k)
          point.push_back({item->entries[k].first, item->entries[k].second, item->key_locations[k],
                           fmt::format("sweep.include[{}].{}", n, item->entries[k].first)});
        sweep.include.push_back(std::move(point));
      }
    } else {
      fail(node.key_locations[i], "sweep." + key,
           fmt::format("unknown key{}; a sweep has: grid, zip, include", did_you_mean(key, keys)));
    }
  }
  return sweep;
}

// A swept value as the point's name shows it: scalars as written, lists and mappings in
// flow style (so two different mappings never print the same).
std::string value_text(const YamlNode& node) {
  if (node.kind == YamlNode::Kind::Scalar) return node.value;
  if (node.kind == YamlNode::Kind::Null) return "null";  // a section removed at this point (denoiser: null)
  std::vector<std::string> parts;
  for (const auto& item : node.items) parts.push_back(value_text(*item));
  for (const auto& [key, value] : node.entries) parts.push_back(key + ":" + value_text(*value));
  const std::string joined = fmt::format("{}", fmt::join(parts, ","));
  return node.kind == YamlNode::Kind::Map ? "{" + joined + "}" : "[" + joined + "]";
}

// Replaces the axis of `path` (or adds one); nullopt values remove it.
void set_axis(std::vector<Axis>& axes, const std::string& path, std::optional<std::vector<YamlNodePtr>> values) {
  auto it = std::find_if(axes.begin(), axes.end(), [&](const Axis& a) { return a.path == path; });
  if (!values) {
    if (it != axes.end()) axes.erase(it);
  } else {
    if (it == axes.end()) it = axes.insert(axes.end(), Axis{});
    it->path = path;
    it->values = *values;
    it->where.file = "--set";
    it->where.line = it->where.column = 0;
    it->key = path;
  }
}

// A point's name becomes part of file names (certify-<point>.tsv) and an HDF5 group name
// (/points/<point>): refused here, before any work, where it could not be one.
constexpr std::size_t kMaxPointName = 255 - (sizeof("certify-.tsv") - 1);

void check_point_name(const std::string& name, const Assignment& assignment, const std::vector<std::string>& parts) {
  for (std::size_t i = 0; i < assignment.size(); ++i) {
    const std::string& part = parts[i];
    const std::string& key = assignment[i].key;
    if (part.find('/') != std::string::npos)
      fail(assignment[i].where, key,
           fmt::format("the point name {} would contain '/', but a point's name (<key>=<value>, joined by ',') becomes a "
                       "file name (certify-<point>.tsv) and an HDF5 group; sweep values without '/' (a relative path "
                       "is read beside the spec: link or copy the files there and sweep their bare names), or run one "
                       "spec per value",
                       printable(name)));
    if (part.find('\0') != std::string::npos)
      fail(assignment[i].where, key,
           fmt::format("the point name {} would contain a NUL byte, which no file name can hold; remove it from the value",
                       printable(name)));
    if (!valid_utf8(part))
      fail(assignment[i].where, key,
           fmt::format("the point name {} is not valid UTF-8 (it becomes a file name and a JSON string); write the value "
                       "in UTF-8",
                       printable(name)));
  }
  if (name.size() > kMaxPointName) {
    std::size_t longest = 0;
    for (std::size_t i = 1; i < parts.size(); ++i)
      if (parts[i].size() > parts[longest].size()) longest = i;
    fail(assignment[longest].where, assignment[longest].key,
         fmt::format("the point name {} is longer than the {} bytes a point name may have: it becomes a file name "
                     "(certify-<point>.tsv), and a file name holds at most 255 bytes; sweep shorter values (a point is "
                     "named <key>=<value>, joined by ',')",
                     printable(name), kMaxPointName));
  }
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
        next.back().push_back({axis.path, v, axis.where, axis.key});
      }
    assignments = std::move(next);
  }
  if (!sweep.zip.empty()) {
    std::vector<Assignment> next;
    for (const auto& a : assignments)
      for (std::size_t i = 0; i < sweep.zip.front().values.size(); ++i) {
        next.push_back(a);
        for (const auto& axis : sweep.zip) next.back().push_back({axis.path, axis.values[i], axis.where, axis.key});
      }
    assignments = std::move(next);
  }
  assignments.insert(assignments.end(), sweep.include.begin(), sweep.include.end());

  ExperimentSpec experiment;
  experiment.file = file;
  experiment.swept = swept;
  std::vector<std::vector<std::string>> names;  // each point's "<key>=<value>" parts
  for (const auto& assignment : assignments) {
    SweepPoint point;
    std::vector<std::string> parts;
    YamlNodePtr root = base->clone();
    for (const Assigned& a : assignment) {
      parts.push_back(fmt::format("{}={}", a.path, value_text(*a.value)));
      set_path(root, a.path, a.value->clone(), "sweep");
      point.assignment.emplace_back(a.path, value_text(*a.value));
    }
    point.name = parts.empty() ? "main" : fmt::format("{}", fmt::join(parts, ","));
    names.push_back(std::move(parts));
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
                              "and cannot vary between points (a ',' in a --set value lists sweep values: to keep a comma in "
                              "a path, quote the value, e.g. --set 'output=\"runs/a,b\"')",
                              file));
  }
  // After the run-level settings: a value that varies them (a --set path with a comma) is
  // first of all that mistake.
  for (std::size_t i = 0; i < experiment.points.size(); ++i)
    check_point_name(experiment.points[i].name, assignments[i], names[i]);
  experiment.name = first.name;
  experiment.output_root = first.output_root;
  experiment.cache_root = first.cache_root;
  if (!swept) {
    experiment.resolved_yaml = first.resolved_yaml;
  } else {
    experiment.resolved_yaml = emit_resolved_points(experiment.points);
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
