// A plugin that declares another API version (RGUARD_TEST_API_VERSION: a future one, or an
// old one): the loader must refuse it and say what changed.
#include "rguard/plugin.hpp"

namespace {
const std::vector<rguard::ParamSpec>& schema() {
  static const std::vector<rguard::ParamSpec> none;
  return none;
}
rguard::Plugin* create(const rguard::Params&) { return nullptr; }
}  // namespace

extern "C" __attribute__((visibility("default"))) const rguard::PluginEntry* rguard_plugin_entry() {
  static const rguard::PluginEntry entry{RGUARD_TEST_API_VERSION, rguard::kPluginAbiTag, rguard::PluginKind::Noise, "wrong_api", "0",
                                         "refused on purpose", &schema, &create};
  return &entry;
}
