// The spec loader: each class of bad input gets a message with file:line:column, the key,
// what was expected and a suggestion; good input resolves with every default filled in.
#include "prelude.hpp"

#include <string>
#include <vector>

#include <fmt/format.h>

#include "plugin/loader.hpp"
#include "spec/spec.hpp"

using namespace rguard;

namespace {

const PluginLoader& loader() {
  static const PluginLoader instance({RGUARD_PLUGIN_DIR});
  return instance;
}

const char* kBase = R"(name: t
seed: 3
dataset: {plugin: synthetic, per_class: 8}
backbone:
  plugin: small_cnn
  channels: [4]
  embedding_dim: 8
  train:
    epochs: 1
    noise_sigma: ${noise.sigma}
noise: {plugin: gaussian, sigma: 0.5}
certifier: {plugin: retrievalguard, n: 100, alpha: 0.01, batch: 50}
metrics:
  - {plugin: certified_recall, radii: [0, 0.1]}
)";

PipelineSpec resolve(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return resolve_pipeline_spec(parse_yaml(text, "spec.yaml"), "spec.yaml", overrides, loader());
}

ExperimentSpec experiment(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return resolve_experiment_spec(parse_yaml(text, "spec.yaml"), "spec.yaml", overrides, loader());
}

// The error message of resolving `text` as a single pipeline (or, with `swept`, as an
// experiment with its sweep), or "" when it resolves.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}, bool swept = false) {
  try {
    if (swept) experiment(text, overrides);
    else resolve(text, overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a valid spec resolves with defaults references and types") {
  const auto spec = resolve(kBase);
  CHECK(spec.name == "t");
  CHECK(spec.seed == 3);
  CHECK(spec.noise.params.get_float("sigma") == 0.5);
  CHECK(spec.backbone.params.get_float("train.noise_sigma") == 0.5);  // ${noise.sigma}
  CHECK(spec.backbone.params.get_int("train.batch") == 128);          // default
  CHECK(spec.certifier.params.get_int("n") == 100);
  CHECK(spec.certifier.params.get_string("radius") == "max");
  CHECK(spec.metrics.size() == 1);
  CHECK(spec.metrics[0].params.get_float_list("radii") == std::vector<double>{0, 0.1});
  CHECK(spec.cache_root == "results/cache");
}

TEST_CASE("the resolved spec is itself a valid spec with the same meaning") {
  const auto spec = resolve(kBase);
  const auto again = resolve(spec.resolved_yaml);
  CHECK(again.resolved_yaml == spec.resolved_yaml);
  CHECK(again.backbone.canonical() == spec.backbone.canonical());
  CHECK(again.certifier.canonical() == spec.certifier.canonical());
}

TEST_CASE("duplicate keys are refused with both locations") {
  const auto message = error_of(replace(kBase, "sigma: 0.5}", "sigma: 0.5, sigma: 0.25}"));
  CHECK(contains(message, "spec.yaml:11:"));
  CHECK(contains(message, "duplicate key 'sigma'"));
  CHECK(contains(message, "first given at spec.yaml:11:"));
  CHECK(contains(error_of(std::string(kBase) + "seed: 4\n"), "duplicate key 'seed'"));
}

TEST_CASE("merge keys and broken YAML are refused with a location") {
  CHECK(contains(error_of("base: &b {x: 1}\nnoise: {<<: *b}\n"), "merge keys"));
  const auto message = error_of("name: t\ndataset: {plugin: synthetic\n");
  CHECK(contains(message, "spec.yaml:"));
  CHECK(contains(message, "invalid YAML"));
}

TEST_CASE("unknown keys get a did-you-mean suggestion") {
  auto message = error_of(replace(kBase, "alpha: 0.01", "alpah: 0.01"));
  CHECK(contains(message, "spec.yaml:12:"));
  CHECK(contains(message, "certifier.alpah"));
  CHECK(contains(message, "did you mean 'alpha'"));
  message = error_of(replace(kBase, "    epochs: 1", "    epoch: 1"));
  CHECK(contains(message, "backbone.train.epoch"));
  CHECK(contains(message, "did you mean 'train.epochs'"));
  message = error_of(replace(kBase, "seed: 3", "sede: 3"));
  CHECK(contains(message, "unknown section"));
  CHECK(contains(message, "did you mean 'seed'"));
  // Case does not count against a suggestion: every letter differs in case here.
  message = error_of(replace(kBase, "alpha: 0.01", "ALPHA: 0.01"));
  CHECK(contains(message, "certifier.ALPHA"));
  CHECK(contains(message, "did you mean 'alpha'"));
  CHECK(rguard::did_you_mean("FASHION_MNIST", {"fashion_mnist", "synthetic"}) == " (did you mean 'fashion_mnist'?)");
  CHECK(rguard::did_you_mean("Synthetic", {"fashion_mnist", "synthetic"}) == " (did you mean 'synthetic'?)");
  CHECK(rguard::did_you_mean("FASHION", {"fashion_mnist", "synthetic"}).empty());  // six letters off: no guess
}

TEST_CASE("a key of another plugin of the section's kind says whose it is: switching plugins with --set keeps the old keys") {
  const auto message = error_of(kBase, {"dataset.plugin=fashion_mnist"});
  CHECK(contains(message, "dataset.per_class"));
  CHECK(contains(message, "'per_class' is a parameter of dataset plugin 'synthetic', not of 'fashion_mnist'"));
  CHECK(contains(message, "a --set of dataset.plugin keeps the section's other keys"));
  CHECK(contains(message, "'fashion_mnist' accepts: plugin, root, protocol"));
  // A key no plugin of the kind has gets the plain refusal with its suggestion.
  const auto typo = error_of(replace(kBase, "per_class: 8", "per_clas: 8"));
  CHECK(contains(typo, "unknown parameter of"));
  CHECK(contains(typo, "did you mean 'per_class'"));
}

TEST_CASE("wrong types name what was expected and what was got") {
  auto message = error_of(replace(kBase, "alpha: 0.01", "alpha: abc"));
  CHECK(contains(message, "spec.yaml:12:"));
  CHECK(contains(message, "certifier.alpha"));
  CHECK(contains(message, "expected float in (0, 1), got 'abc'"));
  message = error_of(replace(kBase, "n: 100", "n: 1.5"));
  CHECK(contains(message, "expected int"));
  message = error_of(replace(kBase, "channels: [4]", "channels: {a: 1}"));
  CHECK(contains(message, "backbone.channels"));
  CHECK(contains(message, "expected list of int"));
  message = error_of(replace(kBase, "n: 100", "n: '100'"));
  CHECK(contains(message, "got the quoted string '100' (remove the quotes"));  // a string, not a number
  CHECK(resolve(replace(kBase, "n: 100", "n: 1e3")).certifier.params.get_int("n") == 1000);
}

TEST_CASE("out-of-range values are refused") {
  auto message = error_of(replace(kBase, "sigma: 0.5}", "sigma: 0}"));
  CHECK(contains(message, "noise.sigma: expected float in [0.0001, 100], got 0"));
  CHECK(contains(error_of(replace(kBase, "sigma: 0.5}", "sigma: -0.1}")), "expected float in [0.0001, 100]"));
  CHECK(contains(error_of(replace(kBase, "n: 100", "n: 0")), "certifier.n: expected int >= 1, got 0"));
  CHECK(contains(error_of(replace(kBase, "alpha: 0.01", "alpha: 1.5")), "expected float in (0, 1)"));
  CHECK(contains(error_of(replace(kBase, "alpha: 0.01", "alpha: 0")), "expected float in (0, 1)"));
  message = error_of(replace(kBase, "radii: [0, 0.1]", "radii: [0, -0.1]"));
  CHECK(contains(message, "metrics[0].radii[1]: expected float >= 0, got -0.1"));
  CHECK(contains(error_of(replace(kBase, "plugin: retrievalguard,", "plugin: retrievalguard, radius: e,")),
                 "expected one of max|a|b|c|d"));
}

TEST_CASE("unknown plugins list what was found - a plugin of another kind is named") {
  auto message = error_of(replace(kBase, "plugin: gaussian", "plugin: gausian"));
  CHECK(contains(message, "spec.yaml:11:"));
  CHECK(contains(message, "unknown noise plugin 'gausian'"));
  CHECK(contains(message, "did you mean 'gaussian'"));
  CHECK(contains(message, "available noise plugins: gaussian"));
  message = error_of(replace(kBase, "plugin: small_cnn", "plugin: gaussian"));
  CHECK(contains(message, "'gaussian' is a noise plugin"));
  message = error_of(replace(kBase, "noise: {plugin: gaussian, sigma: 0.5}", "noise: {sigma: 0.5}"));
  CHECK(contains(message, "noise: missing key 'plugin'"));
}

TEST_CASE("missing sections say what to do") {
  CHECK(contains(error_of("name: t\n"), "dataset: missing section"));
}

namespace {
std::vector<std::string> point_names(const ExperimentSpec& e) {
  std::vector<std::string> names;
  for (const auto& p : e.points) names.push_back(p.name);
  return names;
}
std::string experiment_error(const std::string& text) { return error_of(text, {}, true); }
}  // namespace

TEST_CASE("sweeps: grid product zipped lists included points") {
  auto e = experiment(std::string(kBase) + "sweep: {grid: {noise.sigma: [0.1, 0.2], seed: [0, 1]}}\n");
  CHECK(point_names(e) == std::vector<std::string>{"noise.sigma=0.1,seed=0", "noise.sigma=0.1,seed=1",
                                                   "noise.sigma=0.2,seed=0", "noise.sigma=0.2,seed=1"});
  CHECK(e.points[2].spec.noise.params.get_float("sigma") == 0.2);
  CHECK(e.points[2].spec.backbone.params.get_float("train.noise_sigma") == 0.2);  // ${noise.sigma} per point
  CHECK(e.points[3].spec.seed == 1);
  CHECK(e.points[3].spec.point == "noise.sigma=0.2,seed=1");

  e = experiment(std::string(kBase) +
                 "sweep:\n  zip: {noise.sigma: [0.1, 0.2], backbone.train.noise_sigma: [0.3, 0.4]}\n"
                 "  include: [{noise.sigma: 0.5, backbone.train.noise_sigma: 0.25}]\n");
  CHECK(point_names(e) == std::vector<std::string>{"noise.sigma=0.1,backbone.train.noise_sigma=0.3",
                                                   "noise.sigma=0.2,backbone.train.noise_sigma=0.4",
                                                   "noise.sigma=0.5,backbone.train.noise_sigma=0.25"});
  CHECK(e.points[2].spec.backbone.params.get_float("train.noise_sigma") == 0.25);
  CHECK(e.points[2].spec.noise.params.get_float("sigma") == 0.5);
  CHECK(contains(e.resolved_yaml, "points:"));
  CHECK(!experiment(kBase).swept);
  CHECK(point_names(experiment(kBase)) == std::vector<std::string>{"main"});
}

TEST_CASE("sweeps from the command line - a fixed --set ends an axis") {
  auto e = experiment(kBase, {"noise.sigma=0.12,0.25,0.5"});
  CHECK(point_names(e) == std::vector<std::string>{"noise.sigma=0.12", "noise.sigma=0.25", "noise.sigma=0.5"});
  e = experiment(kBase, {"metrics.0.radii=[0,0.1],[0.2]"});
  CHECK(e.points.size() == 2);
  CHECK(e.points[1].spec.metrics[0].params.get_float_list("radii") == std::vector<double>{0.2});
  e = experiment(std::string(kBase) + "sweep: {grid: {noise.sigma: [0.1, 0.2]}}\n", {"noise.sigma=0.3"});
  CHECK(point_names(e) == std::vector<std::string>{"main"});
  CHECK(e.points[0].spec.noise.params.get_float("sigma") == 0.3);
}

TEST_CASE("bad sweeps are refused with locations") {
  CHECK(contains(experiment_error(std::string(kBase) + "sweep: {grd: {noise.sigma: [0.1]}}\n"), "did you mean 'grid'"));
  CHECK(contains(experiment_error(std::string(kBase) + "sweep: {grid: {noise.sigma: 0.1}}\n"),
                 "sweep.grid.noise.sigma: expected a non-empty list"));
  CHECK(contains(experiment_error(std::string(kBase) + "sweep: {zip: {noise.sigma: [0.1], seed: [1, 2]}}\n"),
                 "zipped lists must have one length"));
  auto message = experiment_error(std::string(kBase) + "sweep: {grid: {noise.sigma: [0.1, -1]}}\n");
  CHECK(contains(message, "spec.yaml:15:"));
  CHECK(contains(message, "noise.sigma: expected float in [0.0001, 100], got -1"));
  CHECK(contains(experiment_error(std::string(kBase) + "sweep: {grid: {noise.sigmaa: [0.1]}}\n"),
                 "did you mean 'sigma'"));
  CHECK(contains(experiment_error(std::string(kBase) + "sweep: {grid: {output: [a, b]}}\n"), "cannot vary"));
  CHECK(contains(experiment_error(std::string(kBase) + "sweep: {grid: {seed: [1]}, include: [{seed: 1}]}\n"),
                 "appears twice"));
  CHECK(contains(error_of(std::string(kBase) + "sweep: {grid: {seed: [1, 2]}}\n"), "expected a single pipeline"));
}

TEST_CASE("--set overrides values list items and references") {
  auto spec = resolve(kBase, {"noise.sigma=0.12", "certifier.n=2000", "metrics.0.radii=[0.5]"});
  CHECK(spec.noise.params.get_float("sigma") == 0.12);
  CHECK(spec.backbone.params.get_float("train.noise_sigma") == 0.12);  // the reference follows
  CHECK(spec.certifier.params.get_int("n") == 2000);
  CHECK(spec.metrics[0].params.get_float_list("radii") == std::vector<double>{0.5});
  spec = resolve(kBase, {"backbone.train.epochs=3"});
  CHECK(spec.backbone.params.get_int("train.epochs") == 3);
  auto message = error_of(kBase, {"noise.sigma=-1"});
  CHECK(contains(message, "--set: noise.sigma: expected float in [0.0001, 100], got -1"));
  CHECK(contains(message, "expected float in [0.0001, 100]"));
  CHECK(contains(error_of(kBase, {"noise.sigma"}), "expected dotted.key=value"));
  CHECK(contains(error_of(kBase, {"metrics.5.radii=[1]"}), "not an index"));
  CHECK(contains(error_of(kBase, {"noise.sgma=1"}), "did you mean 'sigma'"));
}

TEST_CASE("references to missing keys and cycles are errors") {
  CHECK(contains(error_of(replace(kBase, "${noise.sigma}", "${noise.sigmaa}")), "refers to a key that does not exist"));
  CHECK(contains(error_of(replace(kBase, "sigma: 0.5}", "sigma: '${noise.sigma}'}")), "cycle"));
}

TEST_CASE("loading a missing file names it") {
  try {
    load_pipeline_spec("/nonexistent/p.yaml", {}, loader());
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(contains(e.what(), "/nonexistent/p.yaml: cannot open"));
  }
}

TEST_CASE("inputs that would explode are refused: nested aliases and huge sweeps") {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c)
    bomb += fmt::format("{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n", c, c, char(c - 1), char(c - 1),
                        char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1),
                        char(c - 1));
  CHECK(contains(error_of(bomb), "more than 100000 YAML nodes"));
  std::string grid = std::string(kBase) + "sweep: {grid: {";
  for (const char* key : {"seed", "certifier.n", "noise.sigma", "certifier.alpha", "certifier.batch"})
    grid += fmt::format("{}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ", key);
  grid += "}}\n";
  CHECK(contains(experiment_error(grid), "more than 10000 points"));
}

// Point names are the swept values as written, so resolved.yaml must quote them whatever
// they hold; each point's spec must read back as itself too.
TEST_CASE("a sweep's resolved.yaml reads back for hostile point names") {
  const std::vector<std::pair<std::string, std::string>> values{
      {R"("a\"b")", "a\"b"},       {R"("c\\d")", "c\\d"},      {R"("e\nf")", "e\nf"},
      {R"("g: h")", "g: h"},       {R"("i # j")", "i # j"},    {R"("- k")", "- k"},
      {R"("'l'")", "'l'"},         {R"("[m], {n}")", "[m], {n}"}, {R"("&o *p !q %r @s `t")", "&o *p !q %r @s `t"},
      {R"("? u | v > w")", "? u | v > w"}, {R"("  x  ")", "  x  "}, {R"("null")", "null"},
      {R"("~")", "~"},             {R"("")", ""},              {R"("\t\x01 y")", "\t\x01 y"},
      {R"("caf\u00e9 \u2713")", "caf\u00e9 \u2713"},          {R"("---")", "---"},
      {R"("z\\")", "z\\"},
  };
  std::string list;
  for (const auto& [written, value] : values) list += (list.empty() ? "" : ", ") + written;
  const std::string text = replace(kBase, "dataset: {plugin: synthetic, per_class: 8}", "dataset: {plugin: image_folder, root: x}") +
                           "sweep: {grid: {dataset.root: [" + list + "]}}\n";
  const ExperimentSpec e = experiment(text);
  REQUIRE(e.points.size() == values.size());
  const YamlNodePtr back = parse_yaml(e.resolved_yaml, "resolved.yaml");
  const YamlNodePtr points = back->find("points");
  REQUIRE(points);
  REQUIRE(points->entries.size() == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    CAPTURE(i);
    CHECK(e.points[i].name == "dataset.root=" + values[i].second);
    CHECK(points->entries[i].first == e.points[i].name);
    const PipelineSpec again = resolve_pipeline_spec(points->entries[i].second, "resolved.yaml", {}, loader());
    CHECK(again.resolved_yaml == e.points[i].spec.resolved_yaml);
    CHECK(again.dataset.params.get_string("root") == e.points[i].spec.dataset.params.get_string("root"));
  }
}

TEST_CASE("point names that cannot be file names are refused with the swept key's location") {
  const std::string base = std::string(kBase);
  const std::string folders = replace(base, "dataset: {plugin: synthetic, per_class: 8}", "dataset: {plugin: image_folder, root: x}");
  auto message = experiment_error(folders + "sweep:\n  grid: {certifier.radius: [max, b]}\n  include: [{certifier.n: 10, dataset.root: a/b}]\n");
  CHECK(contains(message, "spec.yaml:17:31: sweep.include[0].dataset.root:"));
  CHECK(contains(message, "would contain '/'"));
  message = experiment_error(base + "sweep: {grid: {noise.sigma: [0.5, 0.5" + std::string(300, '0') + "]}}\n");
  CHECK(contains(message, "spec.yaml:15:16: sweep.grid.noise.sigma:"));
  CHECK(contains(message, "is longer than the 243 bytes a point name may have"));
  CHECK(contains(error_of(folders, {"dataset.root=a,b/c"}, true), "--set: dataset.root: the point name 'dataset.root=b/c'"));
}

TEST_CASE("a second YAML document is refused - an empty one after '---' is not") {
  CHECK(contains(error_of(std::string(kBase) + "---\nseed: 4\n"), "spec.yaml:15:1: a second YAML document"));
  CHECK(error_of(std::string(kBase) + "---\n# nothing more\n").empty());
  CHECK(contains(error_of(replace(kBase, "  channels: [4]", "\tchannels: [4]")), "spec.yaml:6:1: a tab character"));
}
