// A plugin that declares a future API version: the loader must refuse it.
#include "rguard/plugin.hpp"

namespace {
const std::vector<rguard::ParamSpec>& schema() {
  static const std::vector<rguard::ParamSpec> none;
  return none;
}
rguard::Plugin* create(const rguard::Params&) { return nullptr; }
}  // namespace

extern "C" __attribute__((visibility("default"))) const rguard::PluginEntry* rguard_plugin_entry() {
  static const rguard::PluginEntry entry{999, rguard::kPluginAbiTag, rguard::PluginKind::Noise, "wrong_api", "0",
                                         "refused on purpose", &schema, &create};
  return &entry;
}
