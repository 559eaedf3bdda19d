// Plugin parameters: the schema a plugin declares and the validated values it receives.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace rguard {

// Path: a string naming a file or folder. A relative path written in a spec file is
// resolved against that file's folder, one given on the command line (--set) against the
// working directory; plugins always receive it absolute.
enum class ParamType { Bool, Int, Float, String, IntList, FloatList, Path };
const char* to_string(ParamType type);

// One parameter of a plugin's schema. Names may be dotted ("train.epochs") for nested
// YAML mappings. `default_value` is YAML text; nullptr makes the parameter required.
// Ranges apply to numbers and to each element of a list.
struct ParamSpec {
  const char* name = "";
  ParamType type = ParamType::Float;
  const char* default_value = nullptr;
  const char* doc = "";
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  bool max_exclusive = false;
  const char* choices = nullptr;  // for String: "a|b|c"
  std::string range_text() const;  // "(0, 1)", ">= 1", "one of a|b|c", "" if unconstrained
};

using ParamValue =
    std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>, std::vector<double>>;

// Validated parameter values, keyed by (dotted) name. Every schema parameter is present.
class Params {
 public:
  void set(const std::string& name, ParamValue value) { values_[name] = std::move(value); }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  bool get_bool(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;  // also accepts an Int value
  const std::string& get_string(const std::string& name) const;
  std::vector<std::int64_t> get_int_list(const std::string& name) const;
  std::vector<double> get_float_list(const std::string& name) const;  // also accepts IntList
  const std::map<std::string, ParamValue>& values() const { return values_; }

 private:
  const ParamValue& at(const std::string& name) const;
  std::map<std::string, ParamValue> values_;
};

// Canonical text of a value (used in cache keys and the resolved spec).
std::string to_yaml_text(const ParamValue& value);

}  // namespace rguard
