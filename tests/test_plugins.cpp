// The plugin boundary: discovery, the checks at load, refusals with clear messages, and
// libraries kept loaded while their objects live.
#include "prelude.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "rguard/certifier.hpp"
#include "plugin/loader.hpp"
#include "rguard/noise.hpp"
#include "shell.hpp"

using namespace rguard;
namespace fs = std::filesystem;

namespace {

std::string test_plugin(const char* name) { return std::string(RGUARD_TEST_PLUGIN_DIR) + "/" + name + ".so"; }

std::string load_error(PluginLoader& loader, const std::string& path, std::optional<PluginKind> kind = {}) {
  try {
    loader.load_file(path, kind);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

StageSpec gaussian_stage() {
  StageSpec stage;
  stage.kind = PluginKind::Noise;
  stage.plugin = "gaussian";
  stage.section = "noise";
  stage.params.set("sigma", 0.5);
  return stage;
}

}  // namespace

TEST_CASE("discovery finds every built plugin with its entry") {
  PluginLoader loader({RGUARD_PLUGIN_DIR});
  CHECK(loader.refused().empty());
  const std::pair<PluginKind, const char*> expected[] = {
      {PluginKind::Dataset, "fashion_mnist"}, {PluginKind::Dataset, "synthetic"},
      {PluginKind::Backbone, "small_cnn"},    {PluginKind::Noise, "gaussian"},
      {PluginKind::Certifier, "retrievalguard"}, {PluginKind::Metric, "recall_at_k"},
      {PluginKind::Metric, "certified_recall"}, {PluginKind::Denoiser, "dncnn"},
      {PluginKind::Denoiser, "unet"},         {PluginKind::Denoiser, "torchscript"}};
  for (const auto& [kind, name] : expected) {
    const PluginEntry* entry = loader.find(kind, name);
    REQUIRE(entry != nullptr);
    CHECK(entry->api_version == kPluginApiVersion);
    CHECK(std::string(entry->name) == name);
    CHECK(entry->kind == kind);
    CHECK(!std::string(entry->version).empty());
    CHECK(contains(loader.file_of(entry), name));
  }
  CHECK(loader.find(PluginKind::Backbone, "gaussian") == nullptr);
  const auto& schema = loader.find(PluginKind::Certifier, "retrievalguard")->schema();
  CHECK(schema.size() == 22);
  CHECK(std::string(schema[0].name) == "n");
  CHECK(std::string(schema[0].default_value) == "100000");
}

TEST_CASE("refusals name the file and what was expected") {
  PluginLoader loader(std::vector<std::string>{});
  auto message = load_error(loader, "/nonexistent/rguard_x.so");
  CHECK(contains(message, "/nonexistent/rguard_x.so: plugin library not found"));
  message = load_error(loader, test_plugin("rguard_test_wrong_api"));
  CHECK(contains(message, "rguard_test_wrong_api.so: plugin API version 999 but this rguard expects 6"));
  // A file whose name says another plugin than it holds would stand in for it: refused.
  const fs::path mislabelled = fs::temp_directory_path() / "rguard_test_mislabelled" / "rguard_noise_fake.so";
  fs::create_directories(mislabelled.parent_path());
  fs::copy_file(std::string(RGUARD_PLUGIN_DIR) + "/rguard_metric_recall_at_k.so", mislabelled, fs::copy_options::overwrite_existing);
  message = load_error(loader, mislabelled.string());
  CHECK(contains(message, "rguard_noise_fake.so: its name says a noise plugin 'fake' but it holds the metric plugin "
                          "'recall_at_k'; name the file rguard_metric_recall_at_k.so"));
  fs::remove_all(mislabelled.parent_path());
  // An old plugin is told what changed since its version.
  message = load_error(loader, test_plugin("rguard_test_old_api"));
  CHECK(contains(message, "rguard_test_old_api.so: plugin API version 2 but this rguard expects 6"));
  CHECK(contains(message, "version 3: certifiers declare what they accumulate"));
  CHECK(contains(message, "version 4: sequential sampling: SamplingPlan gained looks"));
  CHECK(contains(message, "version 5: SamplingPlan lost stopping_id"));
  CHECK(contains(message, "version 6: plugin kind denoiser"));
  message = load_error(loader, test_plugin("rguard_test_no_entry"));
  CHECK(contains(message, "rguard_test_no_entry.so: not an rguard plugin: the symbol 'rguard_plugin_entry' is missing"));
  message = load_error(loader, std::string(RGUARD_PLUGIN_DIR) + "/rguard_noise_gaussian.so", PluginKind::Backbone);
  CHECK(contains(message, "plugin 'gaussian' is a noise plugin, expected a backbone plugin"));
  CHECK(loader.entries().empty());  // nothing refused was registered
}

TEST_CASE("a folder with broken libraries: the good ones load the bad ones are listed") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_plugin_dir";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(test_plugin("rguard_test_wrong_api"), dir / "rguard_test_wrong_api.so");
  fs::copy_file(test_plugin("rguard_test_no_entry"), dir / "rguard_test_no_entry.so");
  std::ofstream(dir / "rguard_garbage.so") << "not an ELF file";
  fs::copy_file(std::string(RGUARD_PLUGIN_DIR) + "/rguard_noise_gaussian.so", dir / "rguard_noise_gaussian.so");
  PluginLoader loader({dir.string()});
  CHECK(loader.find(PluginKind::Noise, "gaussian") != nullptr);
  REQUIRE(loader.refused().size() == 3);
  std::string all;
  for (const auto& r : loader.refused()) all += r + "\n";
  CHECK(contains(all, "rguard_garbage.so: cannot load the plugin library"));
  CHECK(contains(all, "API version 999"));
  CHECK(contains(all, "'rguard_plugin_entry' is missing"));
  fs::remove_all(dir);
}

// Loading a library runs its code: a plugin folder anyone can write, or a library anyone can
// replace, is refused like a shell refuses a world-writable PATH entry; the command line
// loads plugins only for the commands that use them.
TEST_CASE("plugins in a world-writable folder or library are not loaded - cache ls loads none") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_writable_plugins";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(fs::path(RGUARD_PLUGIN_DIR) / "rguard_noise_gaussian.so", dir / "rguard_noise_gaussian.so");
  fs::permissions(dir, fs::perms::others_write, fs::perm_options::add);
  {
    PluginLoader loader({dir.string()});
    CHECK(loader.find(PluginKind::Noise, "gaussian") == nullptr);
    REQUIRE(loader.refused().size() == 1);
    CHECK(contains(loader.refused()[0], "writable by every user"));
    CHECK(contains(loader.refused()[0], dir.string()));
  }
  fs::permissions(dir, fs::perms::others_write, fs::perm_options::remove);
  fs::permissions(dir / "rguard_noise_gaussian.so", fs::perms::others_write, fs::perm_options::add);
  {
    PluginLoader loader({dir.string()});
    CHECK(loader.find(PluginKind::Noise, "gaussian") == nullptr);
    REQUIRE(loader.refused().size() == 1);
    CHECK(contains(loader.refused()[0], "rguard_noise_gaussian.so: plugin library is writable by every user"));
  }
  fs::permissions(dir / "rguard_noise_gaussian.so", fs::perms::others_write, fs::perm_options::remove);
  CHECK(PluginLoader({dir.string()}).find(PluginKind::Noise, "gaussian") != nullptr);

  // The command line: `plugins` warns and names the folder; `cache ls` loads no plugin.
  fs::permissions(dir, fs::perms::others_write, fs::perm_options::add);
  const std::string env = "RGUARD_PLUGIN_PATH=" + dir.string() + " " + std::string(RGUARD_BINARY);
  const auto listed = shell(env + " plugins noise");
  CHECK(contains(listed.text, "warning: " + dir.string() + ": plugin folder is writable by every user"));
  const auto ls = shell(env + " cache ls --cache " + (dir / "cache").string());
  CHECK(!contains(ls.text, "writable by every user"));
  fs::remove_all(dir);
}

TEST_CASE("RGUARD_PLUGIN_PATH is searched first") {
  ::setenv("RGUARD_PLUGIN_PATH", "/first:/second", 1);
  const auto path = PluginLoader::default_search_path();
  ::unsetenv("RGUARD_PLUGIN_PATH");
  REQUIRE(path.size() >= 4);
  CHECK(path[0] == "/first");
  CHECK(path[1] == "/second");
  CHECK(path[2] == RGUARD_PLUGIN_DIR);
}

TEST_CASE("objects keep their library loaded after the loader is gone") {
  std::shared_ptr<Noise> noise;
  {
    PluginLoader loader({RGUARD_PLUGIN_DIR});
    noise = loader.create<Noise>(gaussian_stage());
  }
  CHECK(std::string(noise->family()) == "gaussian");
  CHECK(noise->sigma() == 0.5);
  std::vector<float> out(10);
  noise->sample(1, 2, 3, 1, 10, out.data());
  CHECK(out[0] != 0.0f);
}

TEST_CASE("create checks the interface") {
  PluginLoader loader({RGUARD_PLUGIN_DIR});
  CHECK_THROWS_WITH_AS(loader.create<Certifier>(gaussian_stage()), doctest::Contains("does not implement the noise interface"),
                       Error);
}
