// The bad-input suite: the real `rguard` binary against a corpus of user mistakes
// (tests/bad_inputs/<group>/*.case, one file per case; format in tests/bad_inputs/README.md).
// For each case: no signal and no hang, the expected exit status, every expected part of
// the message, and, when the run is refused, nothing left behind in its work folder but
// what the case allows.
#include "prelude.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cache/cache.hpp"
#include "shell.hpp"

namespace fs = std::filesystem;

namespace {

struct Case {
  fs::path file;
  std::string what;
  std::vector<std::string> setup;
  std::string args;
  int exit = 2;
  std::vector<std::string> expect, reject, allow, absent;
  int timeout = 120;
  std::string spec;  // written to spec.yaml when non-empty
};

Case parse_case(const fs::path& file) {
  Case c;
  c.file = file;
  std::ifstream in(file);
  std::string line;
  bool in_spec = false;
  while (std::getline(in, line)) {
    if (in_spec) {
      c.spec += line + "\n";
      continue;
    }
    if (line == "---") {
      in_spec = true;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const auto colon = line.find(':');
    REQUIRE_MESSAGE(colon != std::string::npos, file.string() << ": expected 'key: value', got: " << line);
    const std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (key == "what") c.what = value;
    else if (key == "setup") c.setup.push_back(value);
    else if (key == "args") c.args = value;
    else if (key == "exit") c.exit = std::stoi(value);
    else if (key == "expect") c.expect.push_back(value);
    else if (key == "reject") c.reject.push_back(value);
    else if (key == "allow") c.allow.push_back(value);
    else if (key == "absent") c.absent.push_back(value);
    else if (key == "timeout") c.timeout = std::stoi(value);
    else FAIL(file.string() << ": unknown key '" << key << "'");
  }
  REQUIRE_MESSAGE(!c.args.empty(), file.string() << ": no 'args:'");
  REQUIRE_MESSAGE(!c.what.empty(), file.string() << ": no 'what:'");
  return c;
}

// Runs a bash command line in `dir` with the suite's variables set.
ShellOutput bash(const std::string& command, const fs::path& dir) {
  std::string quoted;
  for (char ch : command) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return shell(fmt::format(
      "cd '{}' && env -u RGUARD_PLUGIN_PATH WORK='{}' CASES='{}' FIXTURES='{}' PIPELINES='{}' RGUARD='{}' "
      "PYTHON=/usr/bin/python3 bash -c '{}'",
      dir.string(), dir.string(), (fs::path(RGUARD_TEST_SOURCE_DIR) / "bad_inputs").string(),
      (fs::path(RGUARD_TEST_SOURCE_DIR) / "fixtures").string(),
      (fs::path(RGUARD_TEST_SOURCE_DIR) / ".." / "pipelines").lexically_normal().string(), RGUARD_BINARY, quoted));
}

std::set<std::string> files_below(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    out.insert(fs::relative(it->path(), dir).string());
  }
  return out;
}

// Below an allowed prefix, or one of the folders leading to it.
bool allowed(const std::string& path, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return path.rfind(p, 0) == 0 || p.rfind(path + "/", 0) == 0; });
}

// Runs every case of one group; returns how many ran.
int run_group(const std::string& group) {
  const fs::path folder = fs::path(RGUARD_TEST_SOURCE_DIR) / "bad_inputs" / group;
  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(folder))
    if (item.path().extension() == ".case") files.push_back(item.path());
  std::sort(files.begin(), files.end());
  // RGUARD_CASES=word runs only the cases whose file name contains it (while working on them).
  const char* only = std::getenv("RGUARD_CASES");
  int count = 0;
  for (const auto& file : files) {
    if (only && *only && file.filename().string().find(only) == std::string::npos) {
      ++count;
      continue;
    }
    const Case c = parse_case(file);
    const fs::path work = fs::temp_directory_path() / ("rguard_bad_" + group + "_" + file.stem().string());
    fs::remove_all(work);
    fs::create_directories(work);
    if (!c.spec.empty()) std::ofstream(work / "spec.yaml") << c.spec;
    INFO("case ", file.string(), " (", c.what, ")");
    for (const auto& step : c.setup) {
      const ShellOutput setup = bash(step, work);
      INFO("setup: ", step, "\n", setup.text);
      REQUIRE(setup.status == 0);
    }
    const auto before = files_below(work);
    // SIGKILL after the case's timeout: a hang shows as status 137 (128 + 9).
    const ShellOutput out = bash(fmt::format("timeout -s KILL {} \"$RGUARD\" {}", c.timeout, c.args), work);
    INFO("rguard ", c.args, "\n--- output ---\n", out.text);
    CHECK_MESSAGE(out.status != 137, "killed after " << c.timeout << " s: a hang");
    CHECK_MESSAGE((out.status >= 0 && out.status < 128), "ended by a signal (status " << out.status << ")");
    CHECK(out.status == c.exit);
    for (const auto& part : c.expect) CHECK_MESSAGE(out.text.find(part) != std::string::npos, "expected: " << part);
    for (const auto& part : c.reject) CHECK_MESSAGE(out.text.find(part) == std::string::npos, "must not say: " << part);
    const auto after = files_below(work);
    for (const auto& path : c.absent) {
      std::error_code ec;
      CHECK_MESSAGE(!fs::exists(fs::symlink_status(path.front() == '/' ? fs::path(path) : work / path, ec)),
                    "must not exist after the run: " << path);
    }
    if (c.exit != 0) {
      // A refused run leaves nothing behind: no output folder, no cache entry, no temporary file.
      for (const auto& path : after)
        if (!before.count(path)) CHECK_MESSAGE(allowed(path, c.allow), "left behind: " << path);
    }
    // The cache is intact: every entry a run left opens and matches its checksum (a damaged
    // one would be set aside, which the next lines would then see as a removed file).
    if (fs::is_directory(work / "results" / "cache")) {
      const rguard::Cache cache((work / "results" / "cache").string());
      for (const char* stage : rguard::kCacheStages) {
        std::error_code ec;
        for (fs::directory_iterator it(work / "results" / "cache" / stage, ec), end; !ec && it != end; it.increment(ec))
          if (it->path().extension() == ".h5" && fs::is_regular_file(fs::symlink_status(it->path())))
            CHECK_MESSAGE(cache.open(stage, it->path().stem().string()).has_value(), "damaged cache entry: " << it->path());
      }
    }
    // No run, refused or not, removes a file it did not write (a replaced run folder keeps
    // its file names; a damaged cache entry is moved aside, below an allowed prefix).
    for (const auto& path : before)
      if (!after.count(path)) CHECK_MESSAGE(allowed(path, c.allow), "removed: " << path);
    ++count;
    fs::remove_all(work);
  }
  return count;
}

}  // namespace

TEST_CASE("bad inputs: specs and the command line") { CHECK(run_group("spec") >= 1); }
TEST_CASE("bad inputs: data sets") { CHECK(run_group("data") >= 1); }
TEST_CASE("bad inputs: models") { CHECK(run_group("model") >= 1); }
TEST_CASE("bad inputs: caches and run folders") { CHECK(run_group("cache") >= 1); }

TEST_CASE("bad inputs: the corpus has at least 40 cases") {
  std::size_t cases = 0;
  for (const auto& item : fs::recursive_directory_iterator(fs::path(RGUARD_TEST_SOURCE_DIR) / "bad_inputs"))
    cases += item.path().extension() == ".case";
  CHECK(cases >= 40);
}
