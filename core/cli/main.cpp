// rguard command line: run, show, plugins (product.md section 4).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

#include "rguard/error.hpp"
#include "rguard/executor.hpp"
#include "rguard/loader.hpp"
#include "rguard/spec.hpp"

namespace {

using namespace rguard;

void print_plugins(const PluginLoader& loader, const std::string& kind_filter) {
  std::optional<PluginKind> only;
  if (!kind_filter.empty()) {
    only = parse_plugin_kind(kind_filter);
    if (!only) {
      std::vector<std::string> kinds;
      for (PluginKind k : kAllPluginKinds) kinds.emplace_back(to_string(k));
      throw Error(fmt::format("unknown plugin kind '{}'{}; kinds: {}", kind_filter, did_you_mean(kind_filter, kinds),
                              fmt::join(kinds, ", ")));
    }
  }
  for (PluginKind kind : kAllPluginKinds) {
    if (only && kind != *only) continue;
    std::cout << fmt::format("{} plugins:\n", to_string(kind));
    bool any = false;
    for (const PluginEntry* entry : loader.entries()) {
      if (entry->kind != kind) continue;
      any = true;
      std::cout << fmt::format("  {} {}  {}\n    file: {}\n", entry->name, entry->version, entry->summary,
                               loader.file_of(entry));
      for (const ParamSpec& p : entry->schema()) {
        const std::string range = p.range_text();
        std::cout << fmt::format("    {:<18} {:<13} default {:<16} {}{}\n", p.name, to_string(p.type),
                                 p.default_value ? p.default_value : "(required)", p.doc,
                                 range.empty() ? "" : fmt::format(" [{}]", range));
      }
    }
    if (!any) std::cout << "  (none found)\n";
  }
  std::cout << fmt::format("search path: {}\n", fmt::join(loader.search_path(), ":"));
  for (const auto& refused : loader.refused()) std::cout << "refused: " << refused << "\n";
}

void print_run_summary(const RunResult& result) {
  for (const auto& point : result.points) {
    std::cout << fmt::format("\nCertified Recall@1, point '{}': sigma = {}, n = {}, alpha = {}, rho = {:.4f}, {} queries\n",
                             point.name, point.sigma, point.n, point.alpha, point.rho, point.certificates.size());
    const std::string prefix = "certified_recall@";
    bool header = false;
    for (const auto& m : point.metrics) {
      if (m.name.rfind(prefix, 0) != 0) continue;
      if (!header) std::cout << fmt::format("  {:>8}  {}\n", "radius", "certified R@1");
      header = true;
      std::cout << fmt::format("  {:>8}  {:.3f}\n", m.name.substr(prefix.size()), m.value);
    }
    for (const auto& m : point.metrics)
      if (m.name.rfind(prefix, 0) != 0) std::cout << fmt::format("  {:<26} {:.4f}\n", m.name, m.value);
  }
  if (!result.output_dir.empty()) std::cout << fmt::format("\nOutputs: {} ({:.1f} s)\n", result.output_dir, result.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rguard: provably robust 1-nearest-neighbour retrieval by randomized smoothing (RetrievalGuard)"};
  app.require_subcommand(1);
  std::string pipeline, kind;
  std::vector<std::string> overrides;
  bool quiet = false;

  auto* run = app.add_subcommand("run", "run a pipeline: train or load, certify, measure, write outputs");
  run->add_option("pipeline", pipeline, "pipeline YAML file")->required();
  run->add_option("--set", overrides, "override a key: dotted.key=value (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_flag("-q,--quiet", quiet, "print only the summary");

  auto* show = app.add_subcommand("show", "print the resolved spec and what the cache already holds");
  show->add_option("pipeline", pipeline, "pipeline YAML file")->required();
  show->add_option("--set", overrides, "override a key: dotted.key=value (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);

  auto* plugins = app.add_subcommand("plugins", "list discovered plugins with their parameters and defaults");
  plugins->add_option("kind", kind, "dataset, backbone, noise, attack, certifier or metric");

  CLI11_PARSE(app, argc, argv);
  try {
    PluginLoader loader;
    if (plugins->parsed()) {
      print_plugins(loader, kind);
      return 0;
    }
    const PipelineSpec spec = load_pipeline_spec(pipeline, overrides, loader);
    if (show->parsed()) {
      std::cout << "# resolved spec\n" << spec.resolved_yaml << "\n# cache (" << spec.cache_root << ")\n";
      for (const auto& stage : cache_status(spec, loader))
        std::cout << fmt::format("{:<12} {:<8} {}{}\n", stage.stage, stage.status, stage.detail,
                                 stage.key.empty() ? "" : fmt::format("  (key {})", stage.key.substr(0, 12)));
      return 0;
    }
    RunOptions options;
    options.log = quiet ? nullptr : &std::cout;
    const RunResult result = run_pipeline(spec, loader, options);
    print_run_summary(result);
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
