// The rguard command line as a user meets it: exit codes, messages, the summary table,
// the YAML reference in docs/ kept equal to what the plugins declare.
#include "prelude.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

struct Output {
  int status = -1;
  std::string text;  // stdout and stderr together
};

Output rguard(const std::string& arguments) {
  const std::string command = "env -u RGUARD_PLUGIN_PATH " + std::string(RGUARD_BINARY) + " " + arguments + " 2>&1";
  Output out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.text.append(buffer, got);
  const int status = ::pclose(pipe);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const char* kSpec = R"(name: cli
dataset: {plugin: synthetic, per_class: 8}
backbone: {plugin: small_cnn, channels: [4], embedding_dim: 8, train: {epochs: 1, batch: 24, per_class: 8}}
noise: {plugin: gaussian, sigma: 0.25}
certifier: {plugin: retrievalguard, n: 200, alpha: 0.01, batch: 100, queries: 8}
metrics: [{plugin: certified_recall, radii: [0, 0.05]}]
)";

}  // namespace

TEST_CASE("docs/yaml-reference.md is what the plugins declare") {
  const auto out = rguard("plugins --markdown");
  REQUIRE(out.status == 0);
  CHECK(out.text == read(fs::path(RGUARD_TEST_SOURCE_DIR) / ".." / "docs" / "yaml-reference.md"));
}

TEST_CASE("rguard plugins lists kinds, parameters and defaults; a wrong kind is an error") {
  auto out = rguard("plugins noise");
  CHECK(out.status == 0);
  CHECK(contains(out.text, "gaussian 1.0"));
  CHECK(contains(out.text, "sigma"));
  CHECK(!contains(out.text, "small_cnn"));
  out = rguard("plugins nosie");
  CHECK(out.status == 2);
  CHECK(contains(out.text, "did you mean 'noise'"));
}

TEST_CASE("rguard run, show and a rerun from the command line") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "cli.yaml") << kSpec;
  const std::string where = (dir / "cli.yaml").string() + " --set output=" + (dir / "out").string();

  auto out = rguard("show " + where);
  CHECK(out.status == 0);
  CHECK(contains(out.text, "# resolved spec"));
  CHECK(contains(out.text, "backbone     missing"));

  out = rguard("run " + where);
  INFO(out.text);
  CHECK(out.status == 0);
  CHECK(contains(out.text, "[backbone    ] computed"));
  CHECK(contains(out.text, "Certified Recall@1, point 'main'"));
  CHECK(contains(out.text, "certified R@1"));
  CHECK(contains(out.text, "Outputs: " + (dir / "out" / "cli").string()));

  // certificates.h5 is readable by h5py with the documented layout (docs/outputs.md).
  const std::string h5 = (dir / "out" / "cli" / "certificates.h5").string();
  const std::string script =
      "import h5py; f = h5py.File('" + h5 + "', 'r'); p = f['points/main']; "
      "assert p['mean_embedding'].shape == (8, 8); assert f['gallery/embedding'].shape[1] == 8; "
      "assert len(p['radius_b']) == 8 and p['query_id'].dtype == 'int64'; "
      "print('sigma', p.attrs['sigma'], 'n', p.attrs['n'], 'rho', p.attrs['rho'])";
  FILE* pipe = ::popen(("/usr/bin/python3 -c \"" + script + "\" 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char line[512] = {};
  const bool got = std::fgets(line, sizeof line, pipe) != nullptr;
  const int status = ::pclose(pipe);
  INFO(line);
  CHECK(got);
  CHECK(status == 0);
  CHECK(contains(line, "sigma 0.25 n 200"));

  out = rguard("run " + where);
  CHECK(out.status == 0);
  CHECK(contains(out.text, "[samples     ] reused"));
  out = rguard("show " + where);
  CHECK(contains(out.text, "samples      cached"));
  fs::remove_all(dir);
}

TEST_CASE("bad input exits with status 2 and a located message") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_cli_bad";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "bad.yaml") << "name: x\nnoise: {plugin: gaussian, sigma: 0}\n";
  auto out = rguard("run " + (dir / "bad.yaml").string());
  CHECK(out.status == 2);
  CHECK(contains(out.text, "error: "));
  CHECK(contains(out.text, "bad.yaml:1:1: dataset: missing section"));
  out = rguard("run " + (dir / "missing.yaml").string());
  CHECK(out.status == 2);
  CHECK(contains(out.text, "missing.yaml: cannot open"));
  out = rguard("run");
  CHECK(out.status != 0);
  CHECK(contains(out.text, "pipeline is required"));
  fs::remove_all(dir);
}
