#include "plugin/loader.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOOST_DLL_USE_STD_FS
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <iterator>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "rguard/error.hpp"

namespace rguard {

namespace fs = std::filesystem;

struct PluginLoader::Library {
  std::string path;
  boost::dll::shared_library handle;
  const PluginEntry* entry = nullptr;
};

std::vector<std::string> PluginLoader::default_search_path() {
  std::vector<std::string> path;
  if (const char* env = std::getenv("RGUARD_PLUGIN_PATH")) {
    std::string list = env;
    for (std::size_t start = 0; start <= list.size();) {
      const std::size_t colon = std::min(list.find(':', start), list.size());
      if (colon > start) path.push_back(list.substr(start, colon - start));
      start = colon + 1;
    }
  }
  // An installed library finds its plugins beside it (<prefix>/lib/rguard/plugins, wherever
  // the prefix was moved), never the build tree it came from; a library in the build tree
  // finds the build's. The configured install prefix comes last.
  const fs::path beside = fs::path(boost::dll::this_line_location().string()).parent_path() / "rguard" / "plugins";
  path.push_back(fs::is_directory(beside) ? beside.string() : RGUARD_BUILD_PLUGIN_DIR);
  path.push_back(RGUARD_INSTALL_PLUGIN_DIR);
  return path;
}

namespace {
// Loading a library runs its code. Like a shell refusing a world-writable PATH entry, a
// folder or library that other users can write (or that another user owns) is not loaded:
// anyone could have put code there. "" when `path` is safe.
std::string insecure(const std::string& path, bool folder) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  const char* what = folder ? "folder" : "library";
  if (st.st_mode & S_IWOTH)
    return fmt::format("{}: plugin {} is writable by every user, so anyone could have put code there: its plugins are "
                       "not loaded (chmod o-w '{}', or take it off RGUARD_PLUGIN_PATH)",
                       path, what, path);
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return fmt::format("{}: plugin {} belongs to another user (uid {}): its plugins are not loaded (take it off "
                       "RGUARD_PLUGIN_PATH, or copy the plugins into a folder of your own)",
                       path, what, st.st_uid);
  return "";
}
}  // namespace

PluginLoader::PluginLoader(std::vector<std::string> search_path) : search_path_(std::move(search_path)) {
  for (const auto& dir : search_path_) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    if (std::string why = insecure(dir, true); !why.empty()) {
      std::cerr << "warning: " << why << "\n";
      refused_.push_back(std::move(why));
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& item : fs::directory_iterator(dir, ec)) {
      const std::string name = item.path().filename().string();
      if (name.rfind("rguard_", 0) == 0 && item.path().extension() == ".so") files.push_back(item.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      try {
        if (std::string why = insecure(file.string(), false); !why.empty()) throw Error(why);
        load_file(file.string());
      } catch (const Error& e) {
        refused_.push_back(e.what());
      }
    }
  }
}

PluginLoader::~PluginLoader() = default;

const PluginEntry* PluginLoader::load_file(const std::string& path, std::optional<PluginKind> expected_kind) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(fmt::format("{}: plugin library not found (check the path or RGUARD_PLUGIN_PATH)", path));
  auto library = std::make_shared<Library>();
  library->path = fs::absolute(path).lexically_normal().string();
  try {
    library->handle.load(library->path, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: cannot load the plugin library: {}", path, e.what()));
  }
  if (!library->handle.has("rguard_plugin_entry"))
    throw Error(fmt::format("{}: not an rguard plugin: the symbol 'rguard_plugin_entry' is missing "
                            "(define it with RGUARD_PLUGIN(...), see docs/writing-a-plugin.md)",
                            path));
  const PluginEntry* entry = library->handle.get<const PluginEntry*()>("rguard_plugin_entry")();
  if (!entry) throw Error(fmt::format("{}: rguard_plugin_entry returned null", path));
  if (entry->api_version != kPluginApiVersion) {
    std::string changes;
    for (std::uint32_t v = std::min(entry->api_version, kPluginApiVersion) + 1; v <= std::max(entry->api_version, kPluginApiVersion) && v < std::size(kPluginApiChanges); ++v)
      changes += fmt::format("; version {}: {}", v, kPluginApiChanges[v]);
    throw Error(fmt::format("{}: plugin API version {} but this rguard expects {}; rebuild the plugin "
                            "against this rguard's headers (docs/writing-a-plugin.md){}",
                            path, entry->api_version, kPluginApiVersion, changes));
  }
  if (!entry->abi_tag || std::strcmp(entry->abi_tag, kPluginAbiTag) != 0)
    throw Error(fmt::format("{}: plugin built for ABI '{}' but this rguard is '{}'; rebuild the plugin "
                            "with the same compiler and standard library",
                            path, entry->abi_tag ? entry->abi_tag : "(none)", kPluginAbiTag));
  if (expected_kind && entry->kind != *expected_kind)
    throw Error(fmt::format("{}: plugin '{}' is a {} plugin, expected a {} plugin", path, entry->name,
                            to_string(entry->kind), to_string(*expected_kind)));
  // A file named rguard_<kind>_<name>.so must hold that plugin: a mislabelled file would
  // otherwise stand in for another plugin of its real kind without a word.
  const std::string stem = fs::path(path).stem().string();
  for (PluginKind kind : kAllPluginKinds) {
    const std::string prefix = fmt::format("rguard_{}_", to_string(kind));
    if (stem.rfind(prefix, 0) != 0) continue;
    const std::string expected = fmt::format("rguard_{}_{}", to_string(entry->kind), entry->name);
    if (stem != expected)
      throw Error(fmt::format("{}: its name says a {} plugin '{}' but it holds the {} plugin '{}'; name the file {}.so", path,
                              to_string(kind), stem.substr(prefix.size()), to_string(entry->kind), entry->name, expected));
  }
  library->entry = entry;
  auto key = std::make_pair(entry->kind, std::string(entry->name));
  if (!by_name_.count(key)) by_name_[key] = library;  // earlier search-path folders win
  libraries_.push_back(library);
  return entry;
}

const PluginEntry* PluginLoader::find(PluginKind kind, const std::string& name) const {
  auto it = by_name_.find({kind, name});
  return it == by_name_.end() ? nullptr : it->second->entry;
}

std::vector<std::string> PluginLoader::names(PluginKind kind) const {
  std::vector<std::string> out;
  for (const auto& [key, library] : by_name_)
    if (key.first == kind) out.push_back(key.second);
  return out;
}

std::vector<const PluginEntry*> PluginLoader::entries() const {
  std::vector<const PluginEntry*> out;
  for (const auto& [key, library] : by_name_) out.push_back(library->entry);
  return out;
}

std::string PluginLoader::file_of(const PluginEntry* entry) const {
  for (const auto& library : libraries_)
    if (library->entry == entry) return library->path;
  return {};
}

std::shared_ptr<Plugin> PluginLoader::create_plugin(const StageSpec& stage) const {
  auto it = by_name_.find({stage.kind, stage.plugin});
  if (it == by_name_.end())
    throw Error(fmt::format("{}: no {} plugin '{}' is loaded", stage.section, to_string(stage.kind), stage.plugin));
  std::shared_ptr<Library> library = it->second;
  Plugin* raw = with_context([&] { return fmt::format("{}: {}: plugin '{}' ({}) failed to start", stage.location.str(), stage.section, stage.plugin, library->path); },
                             [&] { return library->entry->create(stage.params); });
  // The deleter keeps the library loaded until the object is gone.
  return std::shared_ptr<Plugin>(raw, [library](Plugin* p) { delete p; });
}

void PluginLoader::throw_wrong_interface(const StageSpec& stage) const {
  throw Error(fmt::format("{}: plugin '{}' ({}) does not implement the {} interface", stage.section,
                          stage.plugin, file_of(find(stage.kind, stage.plugin)), to_string(stage.kind)));
}

}  // namespace rguard
