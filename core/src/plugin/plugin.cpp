#include "rguard/plugin.hpp"

#include <fmt/format.h>

#include "rguard/error.hpp"

namespace rguard {

Plugin::~Plugin() = default;

const char* to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::Dataset: return "dataset";
    case PluginKind::Backbone: return "backbone";
    case PluginKind::Noise: return "noise";
    case PluginKind::Attack: return "attack";
    case PluginKind::Certifier: return "certifier";
    case PluginKind::Metric: return "metric";
    case PluginKind::Denoiser: return "denoiser";
  }
  return "?";
}

std::optional<PluginKind> parse_plugin_kind(std::string_view text) {
  for (PluginKind kind : kAllPluginKinds)
    if (text == to_string(kind)) return kind;
  return std::nullopt;
}

std::string SourceLocation::str() const {
  if (file.empty()) return "<command line>";
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

}  // namespace rguard
