#include "rguard/params.hpp"

#include <fmt/format.h>

#include <cmath>

#include "rguard/error.hpp"

namespace rguard {

const char* to_string(ParamType type) {
  switch (type) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::String: return "string";
    case ParamType::IntList: return "list of int";
    case ParamType::FloatList: return "list of float";
    case ParamType::Path: return "path";
  }
  return "?";
}

std::string ParamSpec::range_text() const {
  if (choices) return fmt::format("one of {}", choices);
  const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
  if (has_min && has_max)
    return fmt::format("in {}{}, {}{}", min_exclusive ? "(" : "[", min, max, max_exclusive ? ")" : "]");
  if (has_min) return fmt::format("{} {}", min_exclusive ? ">" : ">=", min);
  if (has_max) return fmt::format("{} {}", max_exclusive ? "<" : "<=", max);
  return "";
}

const ParamValue& Params::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error(fmt::format("internal: parameter '{}' was not declared", name));
  return it->second;
}

namespace {
template <class T>
const T& get_as(const ParamValue& v, const std::string& name, const char* type) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw Error(fmt::format("internal: parameter '{}' is not a {}", name, type));
}
}  // namespace

bool Params::get_bool(const std::string& name) const { return get_as<bool>(at(name), name, "bool"); }
std::int64_t Params::get_int(const std::string& name) const {
  return get_as<std::int64_t>(at(name), name, "int");
}
double Params::get_float(const std::string& name) const {
  const ParamValue& v = at(name);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return get_as<double>(v, name, "float");
}
const std::string& Params::get_string(const std::string& name) const {
  return get_as<std::string>(at(name), name, "string");
}
std::vector<std::int64_t> Params::get_int_list(const std::string& name) const {
  return get_as<std::vector<std::int64_t>>(at(name), name, "list of int");
}
std::vector<double> Params::get_float_list(const std::string& name) const {
  const ParamValue& v = at(name);
  if (const auto* i = std::get_if<std::vector<std::int64_t>>(&v)) return {i->begin(), i->end()};
  return get_as<std::vector<double>>(v, name, "list of float");
}

namespace {
std::string number_text(double d) {
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  return fmt::format("{}", d);  // shortest text that round-trips
}
}  // namespace

std::string to_yaml_text(const ParamValue& value) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return number_text(d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<std::int64_t>& v) const {
      return fmt::format("[{}]", fmt::join(v, ", "));
    }
    std::string operator()(const std::vector<double>& v) const {
      std::vector<std::string> parts;
      for (double d : v) parts.push_back(number_text(d));
      return fmt::format("[{}]", fmt::join(parts, ", "));
    }
  };
  return std::visit(Visitor{}, value);
}

}  // namespace rguard
