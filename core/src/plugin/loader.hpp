// Finds plugin libraries, checks their entry point and creates plugin objects. A library
// stays loaded as long as the loader or any object it created is alive (Boost.DLL gives
// no such guarantee by itself, boostorg/dll #68).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rguard/plugin.hpp"
#include "spec/spec.hpp"

namespace rguard {

class PluginLoader : public PluginCatalog {
 public:
  // RGUARD_PLUGIN_PATH (':'-separated, searched first), then the build tree's plugin
  // folder, then the installed one. The first library found for a (kind, name) wins.
  static std::vector<std::string> default_search_path();

  explicit PluginLoader(std::vector<std::string> search_path = default_search_path());
  ~PluginLoader() override;

  const PluginEntry* find(PluginKind kind, const std::string& name) const override;
  std::vector<std::string> names(PluginKind kind) const override;
  std::vector<const PluginEntry*> entries() const;
  std::string file_of(const PluginEntry* entry) const;
  const std::vector<std::string>& search_path() const { return search_path_; }
  // Libraries that were found but refused, each "file: reason".
  const std::vector<std::string>& refused() const { return refused_; }

  // Loads one library and checks its entry point; throws rguard::Error naming the file
  // and what was expected (missing file or symbol, API version, ABI, kind).
  const PluginEntry* load_file(const std::string& path, std::optional<PluginKind> expected_kind = {});

  // A new object of the stage's plugin, checked to implement the interface T.
  template <class T>
  std::shared_ptr<T> create(const StageSpec& stage) const {
    auto object = std::dynamic_pointer_cast<T>(create_plugin(stage));
    if (!object) throw_wrong_interface(stage);
    return object;
  }

 private:
  struct Library;
  std::shared_ptr<Plugin> create_plugin(const StageSpec& stage) const;
  [[noreturn]] void throw_wrong_interface(const StageSpec& stage) const;

  std::vector<std::string> search_path_;
  std::vector<std::shared_ptr<Library>> libraries_;
  std::map<std::pair<PluginKind, std::string>, std::shared_ptr<Library>> by_name_;
  std::vector<std::string> refused_;
};

}  // namespace rguard
