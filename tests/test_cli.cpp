// The rguard command line as a user meets it: exit codes, messages, the summary table,
// the YAML reference in docs/ kept equal to what the plugins declare.
#include "prelude.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "cache_check.hpp"
#include "shell.hpp"

namespace fs = std::filesystem;

namespace {

using Output = ShellOutput;

Output rguard(const std::string& arguments) {
  return shell("env -u RGUARD_PLUGIN_PATH " + std::string(RGUARD_BINARY) + " " + arguments);
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

TEST_CASE("rguard plugins lists kinds parameters and defaults - a wrong kind is an error") {
  auto out = rguard("plugins noise");
  CHECK(out.status == 0);
  CHECK(contains(out.text, "gaussian 1.1"));
  CHECK(contains(out.text, "sigma"));
  CHECK(!contains(out.text, "small_cnn"));
  out = rguard("plugins nosie");
  CHECK(out.status == 2);
  CHECK(contains(out.text, "did you mean 'noise'"));
}

TEST_CASE("rguard run show and a rerun from the command line") {
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
      "assert p['mean_embedding'].shape == (8, 8); g = f['galleries'][p.attrs['gallery']]; assert g['embedding'].shape[1] == 8; "
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

namespace {

// Starts `rguard ARGS...` as a child process with its output discarded.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& environment = {}) {
  std::fflush(nullptr);  // or the child's freopen would write the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& variable : environment) ::putenv(const_cast<char*>(variable.c_str()));
    std::vector<char*> argv{const_cast<char*>(RGUARD_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    ::unsetenv("RGUARD_PLUGIN_PATH");
    ::execv(RGUARD_BINARY, argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::size_t count_files(const fs::path& dir, const std::string& extension) {
  std::size_t n = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  for (const auto& item : fs::directory_iterator(dir)) n += item.path().extension() == extension;
  return n;
}

// Everything but the last (time) column of a certify-*.tsv.
std::string without_time(const std::string& tsv) {
  std::string out;
  std::istringstream in(tsv);
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind('\t')) + "\n";
  return out;
}

// An empty folder under the system's temporary directory with resume.yaml (kResumeSpec) in it.
fs::path resume_workspace(const char* name);

const char* kResumeSpec = R"(name: resume
dataset: {plugin: synthetic, classes: 8, train_classes: 3, per_class: 12}
backbone: {plugin: small_cnn, channels: [8], embedding_dim: 16, train: {epochs: 1, batch: 24, per_class: 8}}
noise: {plugin: gaussian, sigma: 0.25}
certifier: {plugin: retrievalguard, n: 6000, alpha: 0.01, batch: 500, queries: 60}
metrics: [{plugin: certified_recall, radii: [0, 0.05]}]
)";

fs::path resume_workspace(const char* name) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "resume.yaml") << kResumeSpec;
  return dir;
}

}  // namespace

TEST_CASE("killed with SIGKILL mid-certification a rerun resumes and ends with the same bytes") {
  const fs::path dir = resume_workspace("rguard_test_resume");
  const std::string spec = (dir / "resume.yaml").string();

  // The reference: a run that is never interrupted, with its own cache and output.
  REQUIRE(wait_for(spawn({"run", spec, "--set", "output=" + (dir / "reference").string()})) == 0);

  const std::string out = "output=" + (dir / "killed").string();
  const pid_t child = spawn({"run", spec, "--set", out});
  const fs::path samples = dir / "killed" / "cache" / "samples";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count_files(samples, ".h5") < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(child, SIGKILL);
  wait_for(child);
  const std::size_t done_before = count_files(samples, ".h5");
  INFO("blocks finished before the kill: " << done_before);
  REQUIRE(done_before >= 2);
  REQUIRE(done_before < 8);  // it was killed mid-certification, not after
  CHECK(!fs::exists(dir / "killed" / "resume"));  // no outputs that look complete

  auto resumed = rguard("run " + spec + " --set " + out);
  INFO(resumed.text);
  CHECK(resumed.status == 0);
  CHECK(contains(resumed.text, "[samples     ] resumed"));
  for (const char* file : {"certificates.csv", "metrics.csv", "certificates.h5"})
    CHECK(read(dir / "killed" / "resume" / file) == read(dir / "reference" / "resume" / file));
  CHECK(without_time(read(dir / "killed" / "resume" / "certify-main.tsv")) ==
        without_time(read(dir / "reference" / "resume" / "certify-main.tsv")));

  // cache gc removes what the killed process left half-written; ls shows who uses what.
  auto gc = rguard("cache gc --cache " + (dir / "killed" / "cache").string());
  CHECK(gc.status == 0);
  for (const auto& item : fs::recursive_directory_iterator(dir / "killed" / "cache"))
    CHECK(item.path().string().find(".tmp.") == std::string::npos);
  auto ls = rguard("cache ls --cache " + (dir / "killed" / "cache").string());
  CHECK(ls.status == 0);
  CHECK(contains(ls.text, "samples"));
  CHECK(contains(ls.text, "resume"));
  CHECK(!contains(ls.text, "unused"));
  fs::remove_all(dir);
}

// Stopped at any moment (SIGTERM at spread times through a run that reuses every stage,
// so that many stops fall while the outputs are written and swapped in), a run leaves the
// run folder in place: the last finished run, or the new one, never neither.
TEST_CASE("SIGTERM at any time during a rerun leaves a finished run folder in place") {
  const fs::path dir = resume_workspace("rguard_test_swap_kill");
  std::ofstream(dir / "cli.yaml") << kSpec;
  const std::string spec = (dir / "cli.yaml").string(), out = "output=" + (dir / "out").string();
  REQUIRE(wait_for(spawn({"run", spec, "--set", out})) == 0);
  const std::string reference = read(dir / "out" / "cli" / "certificates.csv");
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(wait_for(spawn({"run", spec, "--set", out})) == 0);
  const auto rerun = std::chrono::steady_clock::now() - start;
  for (int i = 1; i <= 12; ++i) {
    const pid_t child = spawn({"run", spec, "--set", out});
    std::this_thread::sleep_for(rerun * i / 12);
    ::kill(child, SIGTERM);
    wait_for(child);
    INFO("stopped after " << i << "/12 of a rerun's time");
    CHECK(fs::exists(dir / "out" / "cli" / "manifest.json"));
    CHECK(read(dir / "out" / "cli" / "certificates.csv") == reference);
  }
  REQUIRE(wait_for(spawn({"run", spec, "--set", out})) == 0);
  for (const auto& item : fs::directory_iterator(dir / "out"))  // dead runs' staging folders are gone
    CHECK_MESSAGE(item.path().filename().string().find(".partial-") == std::string::npos, item.path().string());
  fs::remove_all(dir);
}

TEST_CASE("Ctrl-C during a run says what is kept and exits with the signal's status") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_interrupt";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "cli.yaml") << kSpec;
  // n = 400,000 per query takes far longer than the 2 s before the interrupt.
  const auto out = shell("env -u RGUARD_PLUGIN_PATH timeout --preserve-status -s INT 2 " + std::string(RGUARD_BINARY) +
                         " run " + (dir / "cli.yaml").string() + " --set output=" + (dir / "out").string() +
                         " --set certifier.n=400000");
  INFO(out.text);
  CHECK(out.status == 130);  // 128 + SIGINT, as a shell reports a process the signal killed
  CHECK(contains(out.text, "rguard: interrupted; the run folder holds the last finished run"));
  CHECK(!fs::exists(dir / "out" / "cli"));  // no run had finished
  fs::remove_all(dir);
}

TEST_CASE("a disk that fills up under the cache or the outputs: a clear error, nothing stored is lost, a rerun resumes") {
  const fs::path dir = resume_workspace("rguard_test_disk_full");
  const std::string run = "run " + (dir / "resume.yaml").string() + " --set certifier.n=300 --set cache=" +
                          (dir / "cache").string() + " --set output=" + (dir / "out").string();
  // tests/fault/disk_full.c: writes below `where` fail with ENOSPC after `bytes` bytes.
  auto on_full_disk = [&](const fs::path& where, std::uintmax_t bytes, const std::string& arguments) {
    return shell(fmt::format("env -u RGUARD_PLUGIN_PATH LD_PRELOAD={} RGUARD_TEST_FULL_DIR={} RGUARD_TEST_FULL_BYTES={} {} {}",
                             RGUARD_TEST_DISK_FULL, where.string(), bytes, RGUARD_BINARY, arguments));
  };
  auto intact = [&] { return intact_cache_entries(dir, dir / "cache"); };

  // A finished run: its outputs, and its backbone, embeddings and 8 sample blocks cached.
  REQUIRE(rguard(run + " -q").status == 0);
  const std::string first_csv = read(dir / "out" / "resume" / "certificates.csv");
  std::uintmax_t block_bytes = 0;
  for (const auto& item : fs::directory_iterator(dir / "cache" / "samples"))
    if (item.path().extension() == ".h5") block_bytes = std::max(block_bytes, fs::file_size(item.path()));
  REQUIRE(block_bytes > 0);
  const std::size_t entries_before = intact();

  // n = 600 needs 8 new blocks; the disk has room for about two.
  auto full = on_full_disk(dir / "cache", 5 * block_bytes / 2, run + " --set certifier.n=600");
  INFO(full.text);
  CHECK(full.status == 2);
  CHECK(contains(full.text, "error: "));
  CHECK(contains(full.text, "disk full"));
  CHECK(!contains(full.text, "Exception raised from"));
  CHECK(read(dir / "out" / "resume" / "certificates.csv") == first_csv);  // the last outputs stay
  const std::size_t entries_after = intact();
  CHECK(entries_after > entries_before);      // nothing lost, and the blocks that fitted were kept
  CHECK(entries_after < entries_before + 8);  // it did stop early

  // With room again, the rerun keeps the blocks stored before the disk filled up and ends
  // with the bytes of a run that never failed.
  auto resumed = rguard(run + " --set certifier.n=600");
  INFO(resumed.text);
  CHECK(resumed.status == 0);
  CHECK(contains(resumed.text, "[samples     ] resumed"));
  REQUIRE(rguard(run + " --set certifier.n=600 -q --set cache=" + (dir / "clean_cache").string() + " --set output=" +
                 (dir / "clean").string())
              .status == 0);
  const std::string second_csv = read(dir / "out" / "resume" / "certificates.csv");
  CHECK(second_csv == read(dir / "clean" / "resume" / "certificates.csv"));
  CHECK(read(dir / "out" / "resume" / "certificates.h5") == read(dir / "clean" / "resume" / "certificates.h5"));

  // The disk fills up while the outputs are written: the previous outputs stay whole.
  full = on_full_disk(dir / "out", 4096, run + " --set certifier.n=600 --set certifier.alpha=0.02 -q");
  INFO(full.text);
  CHECK(full.status == 2);
  CHECK(contains(full.text, "disk full"));
  CHECK(read(dir / "out" / "resume" / "certificates.csv") == second_csv);
  intact();
  fs::remove_all(dir);
}

TEST_CASE("two runs sharing a cache at once both finish with the same results and an intact cache") {
  const fs::path dir = resume_workspace("rguard_test_concurrent");
  const std::string spec = (dir / "resume.yaml").string();
  const std::string cache = "cache=" + (dir / "cache").string();
  const pid_t a = spawn({"run", spec, "--set", "output=" + (dir / "a").string(), "--set", cache});
  const pid_t b = spawn({"run", spec, "--set", "output=" + (dir / "b").string(), "--set", cache});
  CHECK(wait_for(a) == 0);
  CHECK(wait_for(b) == 0);
  CHECK(read(dir / "a" / "resume" / "certificates.csv") == read(dir / "b" / "resume" / "certificates.csv"));
  CHECK(count_files(dir / "cache" / "samples", ".h5") == 8);  // 60 queries in blocks of 8: each once
  CHECK(count_files(dir / "cache" / "samples", ".corrupt") == 0);
  CHECK(count_files(dir / "cache" / "backbone", ".h5") == 1);
  // A third run reuses everything the two wrote.
  auto third = rguard("run " + spec + " --set output=" + (dir / "c").string() + " --set " + cache);
  CHECK(contains(third.text, "[samples     ] reused"));
  CHECK(read(dir / "c" / "resume" / "certificates.csv") == read(dir / "a" / "resume" / "certificates.csv"));
  fs::remove_all(dir);
}

namespace {

// What a figure's text measures on the report page in a 1280 px window: the height of its
// digits and capitals (0.729 em in DejaVu Sans, the figures' font), given the text's size in
// the figure's own pixels, the figure's width and the page's content width. An image is never
// shown wider than the content (img max-width: 100%); shown narrower it shrinks its text.
double shown_cap_height(double font_px, double figure_width, double content_width) {
  return font_px * std::min(1.0, content_width / figure_width) * 0.729;
}

double number_after(const std::string& text, const std::string& key) {
  const auto at = text.find(key);
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + key.size());
}

// The report's figures keep every text at least 11 px high at 1280 px, each has one legend
// (one plot of each script's two passes titles its curves, each name once) and each panel's
// plot is at least 400 px wide.
void check_figures(const fs::path& report, const std::vector<std::string>& stems) {
  const std::string page = read(report / "index.html");
  const std::string body = page.substr(page.find("body{"));
  REQUIRE(contains(page, "img{max-width:100%"));
  const double margin_em = number_after(body, "margin:"), max_width = number_after(body, "max-width:");
  REQUIRE(contains(body.substr(0, body.find('}')), "em;"));
  const double content = std::min(max_width, 1280 - 2 * margin_em * 16);  // 16 px = 1em
  CHECK(content == 1216);
  for (const auto& stem : stems) {
    INFO(stem);
    const std::string gp = read(report / (stem + ".gp"));
    REQUIRE(!gp.empty());
    std::vector<std::string> passes;
    for (auto at = gp.find("set terminal "); at != std::string::npos;) {
      const auto next = gp.find("set terminal ", at + 1);
      passes.push_back(gp.substr(at, next == std::string::npos ? std::string::npos : next - at));
      at = next;
    }
    CHECK(passes.size() == 2);
    for (const auto& pass : passes) {
      const bool png = pass.rfind("set terminal pngcairo ", 0) == 0;
      CHECK((png || pass.rfind("set terminal svg dynamic ", 0) == 0));
      const double width = number_after(pass, " size "), font = number_after(pass, "font 'DejaVu Sans,");
      const double font_px = png ? font * 96 / 72 : font;  // pngcairo: points at 96 dpi; SVG: user units
      const std::string terminal = pass.substr(0, pass.find('\n'));
      INFO(terminal);
      CHECK(shown_cap_height(font_px, width, content) >= 11);
      std::size_t fonts = 0, keys = 0, legends = 0;
      for (auto at = pass.find("font '"); at != std::string::npos; at = pass.find("font '", at + 1)) ++fonts;
      CHECK(fonts == 1);  // every text in the terminal's font
      CHECK(!contains(pass, "font \""));
      std::istringstream lines(pass);
      for (std::string line; std::getline(lines, line);) {
        keys += line.rfind("set key", 0) == 0;
        if (line.rfind("set lmargin at screen ", 0) == 0) {
          std::string right;
          std::getline(lines, right);
          REQUIRE(right.rfind("set rmargin at screen ", 0) == 0);
          CHECK((number_after(right, "screen ") - number_after(line, "screen ")) * width *
                    std::min(1.0, content / width) >= 400);
        }
        if (line.rfind("plot ", 0) != 0 || !contains(line, " title \"")) continue;
        ++legends;
        std::set<std::string> names;
        std::size_t titled = 0;
        for (auto at = line.find(" title \""); at != std::string::npos; at = line.find(" title \"", at + 1), ++titled)
          names.insert(line.substr(at, line.find('"', at + 8) - at));
        CHECK(names.size() == titled);
        CHECK(!contains(line, "notitle"));
        // No two curves look alike: gnuplot's colours repeat every 8 linetypes, so the style
        // with its linetype taken modulo 8 (and its point type left out) must differ.
        std::set<std::string> looks;
        for (auto at = line.find(" with "); at != std::string::npos; at = line.find(" with ", at + 1)) {
          std::string style = line.substr(at + 6, line.find(" title ", at) - at - 6), seen;
          std::istringstream words(style);
          for (std::string word; words >> word;) {
            if (word == "linetype" || word == "pointtype") {
              int number = 0;
              words >> number;
              if (word == "linetype") seen += fmt::format("colour {} ", (number - 1) % 8);
              continue;
            }
            seen += word + " ";
          }
          looks.insert(seen);
        }
        CHECK(looks.size() == titled);
      }
      CHECK(keys == 1);
      CHECK(legends == 1);
    }
    // The SVG the page shows: every text drawn at a size the rule above allows.
    const std::string svg = read(report / (stem + ".svg"));
    const double view_width = number_after(svg, "viewBox=\"0 0 ");
    CHECK(view_width == number_after(passes.back(), " size "));
    std::size_t sizes = 0;
    for (auto at = svg.find("font-size=\""); at != std::string::npos; at = svg.find("font-size=\"", at + 1), ++sizes)
      CHECK(shown_cap_height(std::atof(svg.c_str() + at + 11), view_width, content) >= 11);
    CHECK(sizes > 10);
  }
}

// Runs kSpec with `sets` in a fresh folder `name` under the temp directory, then `rguard
// report` on it into <folder>/report; the run's output and the report's are returned.
struct Reported {
  fs::path dir;
  Output run, report;
};
Reported run_and_report(const std::string& name, const std::string& sets) {
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "cli.yaml") << kSpec;
  auto run = rguard("run " + (dir / "cli.yaml").string() + " --set output=" + (dir / "out").string() + " " + sets);
  auto report = run.status == 0 ? rguard("report " + (dir / "out" / "cli").string() + " --out " + (dir / "report").string())
                                : run;
  return {dir, run, report};
}

}  // namespace

TEST_CASE("rguard report writes tables with the best value marked plots and an index page") {
  auto [dir, run, out] = run_and_report("rguard_test_report", "--set noise.sigma=0.2,0.4,0.6");
  REQUIRE(run.status == 0);
  INFO(out.text);
  CHECK(out.status == 0);
  const auto md = read(dir / "report" / "table.md");
  CHECK(contains(md, "| sigma=0.2 |"));  // the short name: the last key item
  CHECK(contains(md, "| sigma=0.4 |"));
  CHECK(contains(md, "R@1 r=0.05"));
  CHECK(contains(md, "**"));  // a best value is marked
  CHECK(contains(read(dir / "report" / "table.tex"), "\\textbf{"));
  CHECK(contains(read(dir / "report" / "table.csv"), "\nbest,"));
  CHECK(contains(read(dir / "report" / "index.html"), "<table>"));
  CHECK(fs::file_size(dir / "report" / "certified_recall.png") > 1000);
  CHECK(contains(read(dir / "report" / "certified_recall.svg"), "<svg"));
  // Three points: the Recall@K and per-certificate figures are 2 rows of panels.
  CHECK(contains(read(dir / "report" / "recall_at_k.gp"), "set title \"sigma=0.6\" noenhanced\nplot "));
  check_figures(dir / "report", {"certified_recall", "recall_at_k", "certificates"});
  CHECK(!fs::exists(dir / "report" / "samples.svg"));  // fixed n: every query drew the same
  out = rguard("report " + (dir / "nothing").string());
  CHECK(out.status == 2);
  CHECK(contains(out.text, "not a run folder"));
  fs::remove_all(dir);
}

TEST_CASE("rguard report draws more curves than gnuplot has colours each in a look of its own") {
  const auto [dir, run, out] = run_and_report("rguard_test_report_many", "--set noise.sigma=0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55");
  REQUIRE(run.status == 0);
  INFO(out.text);
  CHECK(out.status == 0);
  const auto gp = read(dir / "report" / "certified_recall.gp");
  CHECK(contains(gp, "linetype 9 dashtype 3 "));  // the 9th curve: the first colour, dashed apart
  check_figures(dir / "report", {"certified_recall"});
  fs::remove_all(dir);
}

TEST_CASE("rguard report on a sequential run draws the samples each query drew against its radius") {
  const auto [dir, run, out] = run_and_report("rguard_test_report_sequential",
                                               "--set certifier.n=1600 --set certifier.sampling=sequential --set "
                                               "certifier.first_look=100 --set certifier.target_radii=[0] --set "
                                               "certifier.target_ranks=[1]");
  REQUIRE(run.status == 0);
  CHECK(contains(run.text, "sequential: "));
  INFO(out.text);
  CHECK(out.status == 0);
  check_figures(dir / "report", {"certified_recall", "samples"});
  const auto gp = read(dir / "report" / "samples.gp");
  CHECK(contains(gp, "set logscale y"));
  CHECK(contains(gp, "with points"));
  CHECK(contains(read(dir / "report" / "index.html"), "samples.svg"));
  // One point per query: the data block holds the 8 queries' (radius, samples).
  const auto data = read(dir / "report" / "samples.dat");
  CHECK(std::count(data.begin(), data.end(), '\n') >= 8);
  fs::remove_all(dir);
}

TEST_CASE("rguard report keeps run names as data in table.tex table.csv and the gnuplot scripts") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_report_names";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "cli.yaml") << kSpec;
  auto quote = [](const std::string& word) {
    std::string out = "'";
    for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  };
  REQUIRE(rguard("run " + (dir / "cli.yaml").string() + " --set output=" + (dir / "out").string()).status == 0);
  const std::vector<std::string> names{"\\immediate\\write18{touch pwned}", "=cmd|' -C calc'!A0", "@SUM(1)",
                                       "-2+3", "b\n!touch pwned #", "c\"`touch pwned`\"^^5c~"};
  std::string runs = quote((dir / "out" / "cli").string());
  for (const auto& name : names) {
    fs::copy(dir / "out" / "cli", dir / "out" / name, fs::copy_options::recursive);
    runs += " " + quote((dir / "out" / name).string());
  }
  const fs::path report = dir / "o'ut\"\\";
  auto out = rguard("report " + runs + " --out " + quote(report.string()));
  INFO(out.text);
  REQUIRE(out.status == 0);
  CHECK(!contains(out.text, "gnuplot"));

  const std::string tex = read(report / "table.tex");
  CHECK(contains(tex, "\\textbackslash{}immediate\\textbackslash{}write18\\{touch pwned\\}: main &"));
  CHECK(contains(tex, "c\"`touch pwned`\"\\textasciicircum{}\\textasciicircum{}5c\\textasciitilde{}: main &"));
  CHECK(contains(tex, "=cmd\\textbar{}' -C calc'!A0: main &"));
  CHECK(contains(tex, "b !touch pwned \\#: main &"));
  CHECK(!contains(tex, "\\immediate"));

  // A text cell a spreadsheet would take for a formula starts with a quote; numbers stay.
  const std::string csv = read(report / "table.csv");
  CHECK(contains(csv, "\n\"'=cmd|' -C calc'!A0: main\","));
  CHECK(contains(csv, "\n\"'@SUM(1): main\","));
  CHECK(contains(csv, "\n\"'-2+3: main\","));
  CHECK(contains(csv, "\n\"b\n!touch pwned #: main\","));
  CHECK(contains(csv, "\ncli: main,0.25,200,"));
  for (const char* name : {"table.csv", "table_recall_at_k.csv", "table_certificates.csv"}) {
    std::istringstream lines(read(report / name));
    for (std::string line; std::getline(lines, line);)
      CHECK_MESSAGE(line.find_first_of("=+-@") != 0, name << ": " << line);
  }

  // The script names only its own files; every name in it is octal-escaped text.
  const std::string gp = read(report / "certified_recall.gp");
  CHECK(contains(gp, "set output 'certified_recall.png'"));
  CHECK(contains(gp, "plot 'certified_recall.dat' index 0 "));
  CHECK(contains(gp, "title \"\\134immediate\\134write18\\173touch pwned\\175: main\""));
  for (const char* code : {"!", "`", "@", "$", ";", "#", "o'ut", "rguard_test_report_names"})
    CHECK_MESSAGE(!contains(gp, code), "certified_recall.gp holds " << code);
  std::istringstream dat(read(report / "certified_recall.dat"));
  for (std::string line; std::getline(dat, line);)
    CHECK_MESSAGE((line.empty() || line[0] == '#' || (line[0] >= '0' && line[0] <= '9')), line);
  CHECK(!fs::exists(dir / "pwned"));
  CHECK(!fs::exists(report / "pwned"));

  // A gnuplot that fails leaves a note naming its log, which is there.
  fs::create_directories(dir / "bin");
  std::ofstream(dir / "bin" / "gnuplot") << "#!/bin/sh\necho 'no luck' >&2\nexit 3\n";
  fs::permissions(dir / "bin" / "gnuplot", fs::perms::owner_all);
  out = shell("PATH=" + quote((dir / "bin").string()) + ":\"$PATH\" env -u RGUARD_PLUGIN_PATH " +
              std::string(RGUARD_BINARY) + " report " + runs + " --out " + quote(report.string()));
  CHECK(out.status == 0);
  const std::string log = (report / "certified_recall.log").string();
  CHECK(contains(out.text, "note: gnuplot failed (status 3) for certified_recall; see " + log + " (the tables"));
  CHECK(read(log) == "no luck\n");
  fs::remove_all(dir);
}

// ---- the paper pipelines at toy scale, on generated archives in the official layouts ----

#include <stb_image_write.h>

namespace {

// A 48x40 RGB image whose colour depends on the class, with a per-image pattern.
void write_image(const fs::path& path, int label, int index) {
  fs::create_directories(path.parent_path());
  std::vector<unsigned char> pixels(48 * 40 * 3);
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 48; ++x)
      for (int c = 0; c < 3; ++c)
        pixels[static_cast<std::size_t>((y * 48 + x) * 3 + c)] =
            static_cast<unsigned char>((label * 67 + c * 91 + ((x + y + index * 7) % 16) * 4) % 256);
  if (path.extension() == ".png") REQUIRE(stbi_write_png(path.c_str(), 48, 40, 3, pixels.data(), 48 * 3) != 0);
  else REQUIRE(stbi_write_jpg(path.c_str(), 48, 40, 3, pixels.data(), 95) != 0);
}

const char* kToyScale =
    " --set dataset.resize=40 --set dataset.crop=32 --set backbone.depth=18 --set backbone.embedding_dim=16"
    " --set backbone.frozen_bn=false --set backbone.train.epochs=1 --set backbone.train.batch=8"
    " --set backbone.train.per_class=2 --set backbone.train.lr=0.001 --set noise.sigma=0.25"
    " --set certifier.n=64 --set certifier.batch=64 --set certifier.queries=4";

}  // namespace

TEST_CASE("paper_cub.yaml at toy scale on a generated CUB-200-2011 archive") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_cub";
  fs::remove_all(dir);
  const fs::path root = dir / "CUB_200_2011";
  std::ofstream images, labels;
  fs::create_directories(root);
  images.open(root / "images.txt");
  labels.open(root / "image_class_labels.txt");
  int id = 0;
  for (int label : {1, 2, 101, 102})
    for (int k = 0; k < 4; ++k) {
      const std::string relative = fmt::format("{:03d}.Class_{}/img_{}.jpg", label, label, k);
      write_image(root / "images" / relative, label, k);
      images << ++id << " " << relative << "\n";
      labels << id << " " << label << "\n";
    }
  images.close();
  labels.close();
  const std::string run = "run " + std::string(RGUARD_TEST_SOURCE_DIR) + "/../pipelines/paper_cub.yaml --set dataset.root=" +
                          root.string() + " --set output=" + (dir / "out").string() + kToyScale;
  auto out = rguard(run);
  INFO(out.text);
  CHECK(out.status == 0);
  CHECK(contains(out.text, "CUB-200-2011 (classes <= 100 train): train 8, eval 8 images"));
  CHECK(contains(out.text, "map@r"));
  CHECK(fs::exists(dir / "out" / "paper_cub" / "certificates.csv"));
  CHECK(contains(out.text, "[dataset     ] computed"));
  // The decoded images are cached; the data fingerprint (and so every later key) is unchanged.
  out = rguard(run);
  CHECK(contains(out.text, "[dataset     ] reused"));
  CHECK(contains(out.text, "[backbone    ] reused"));
  CHECK(contains(out.text, "[samples     ] reused"));

  // An unreadable file is named; with on_error: skip it is left out and listed.
  std::ofstream(root / "images" / "101.Class_101" / "img_0.jpg") << "not a JPEG";
  out = rguard(run);
  CHECK(out.status == 2);
  CHECK(contains(out.text, "img_0.jpg: cannot decode the image"));
  out = rguard(run + " --set dataset.on_error=skip");
  CHECK(out.status == 0);
  CHECK(contains(out.text, "warning: skipped"));
  fs::remove_all(dir);
}

TEST_CASE("paper_sop.yaml at toy scale on a generated Stanford Online Products archive") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_sop";
  fs::remove_all(dir);
  const fs::path root = dir / "Stanford_Online_Products";
  fs::create_directories(root);
  std::ofstream train(root / "Ebay_train.txt"), test(root / "Ebay_test.txt");
  train << "image_id class_id super_class_id path\n";
  test << "image_id class_id super_class_id path\n";
  int id = 0;
  for (int label : {1, 2, 3, 4})
    for (int k = 0; k < 3; ++k) {
      const std::string relative = fmt::format("bicycle_final/{}_{}.png", label, k);
      write_image(root / relative, label, k);
      (label <= 2 ? train : test) << ++id << " " << label << " 1 " << relative << "\n";
    }
  train.close();
  test.close();
  auto out = rguard("run " + std::string(RGUARD_TEST_SOURCE_DIR) + "/../pipelines/paper_sop.yaml --set dataset.root=" +
                    root.string() + " --set output=" + (dir / "out").string() + kToyScale);
  INFO(out.text);
  CHECK(out.status == 0);
  CHECK(contains(out.text, "Stanford Online Products: train 6, eval 6 images"));
  CHECK(contains(out.text, "Certified Recall@1"));
  fs::remove_all(dir);
}

#include <matio.h>

TEST_CASE("paper_cars.yaml at toy scale on a generated Cars196 archive (cars_annos.mat)") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_cars";
  fs::remove_all(dir);
  const fs::path root = dir / "cars196";
  std::vector<std::pair<std::string, double>> rows;
  for (int label : {1, 2, 99, 100})
    for (int k = 0; k < 3; ++k) {
      const std::string relative = fmt::format("car_ims/{:06d}.jpg", rows.size() + 1);
      write_image(root / relative, label, k);
      rows.emplace_back(relative, label);
    }
  // The official file: a 1 x N struct array `annotations` (relative_im_path, class, ...).
  const char* fields[] = {"relative_im_path", "class"};
  std::size_t dims[2] = {1, rows.size()};
  matvar_t* annotations = Mat_VarCreateStruct("annotations", 2, dims, fields, 2);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::size_t text_dims[2] = {1, rows[i].first.size()};
    Mat_VarSetStructFieldByName(annotations, "relative_im_path", i,
                                Mat_VarCreate(nullptr, MAT_C_CHAR, MAT_T_UINT8, 2, text_dims, rows[i].first.data(), 0));
    std::size_t one[2] = {1, 1};
    Mat_VarSetStructFieldByName(annotations, "class", i, Mat_VarCreate(nullptr, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, one, &rows[i].second, 0));
  }
  mat_t* mat = Mat_CreateVer((root / "cars_annos.mat").c_str(), nullptr, MAT_FT_MAT5);
  REQUIRE(mat != nullptr);
  REQUIRE(Mat_VarWrite(mat, annotations, MAT_COMPRESSION_NONE) == 0);
  Mat_VarFree(annotations);
  Mat_Close(mat);
  auto out = rguard("run " + std::string(RGUARD_TEST_SOURCE_DIR) + "/../pipelines/paper_cars.yaml --set dataset.root=" +
                    root.string() + " --set output=" + (dir / "out").string() + kToyScale);
  INFO(out.text);
  CHECK(out.status == 0);
  CHECK(contains(out.text, "Cars196 (classes <= 98 train): train 6, eval 6 images"));
  fs::remove_all(dir);
}

TEST_CASE("killed with SIGKILL while training - a rerun resumes from the last epoch with the same results") {
  const fs::path dir = fs::temp_directory_path() / "rguard_test_train_resume";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string spec = (dir / "train.yaml").string();
  std::ofstream(spec) << R"(name: train
threads: 1
dataset: {plugin: synthetic, classes: 6, train_classes: 3, per_class: 200}
backbone: {plugin: small_cnn, channels: [8], embedding_dim: 8, train: {epochs: 60, batch: 30, per_class: 10}}
noise: {plugin: gaussian, sigma: 0.25}
certifier: {plugin: retrievalguard, n: 200, alpha: 0.01, batch: 100, queries: 8}
metrics: [{plugin: certified_recall, radii: [0]}]
)";
  REQUIRE(wait_for(spawn({"run", spec, "--set", "output=" + (dir / "reference").string()})) == 0);
  const std::string out = "output=" + (dir / "killed").string();
  const pid_t child = spawn({"run", spec, "--set", out});
  const fs::path checkpoints = dir / "killed" / "cache" / "checkpoint";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count_files(checkpoints, ".h5") < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(child, SIGKILL);
  wait_for(child);
  REQUIRE(count_files(checkpoints, ".h5") == 1);
  REQUIRE(count_files(dir / "killed" / "cache" / "backbone", ".h5") == 0);  // killed mid-training
  auto resumed = rguard("run " + spec + " --set " + out);
  INFO(resumed.text);
  CHECK(resumed.status == 0);
  CHECK(contains(resumed.text, "[backbone    ] resumed"));
  CHECK(read(dir / "killed" / "train" / "certificates.csv") == read(dir / "reference" / "train" / "certificates.csv"));
  fs::remove_all(dir);
}

TEST_CASE("bench: the scripts parse and the Python reference loop runs on the test fixture") {
  // The benchmarks are not run here (timings are never tests), but they must not rot.
  const fs::path root = fs::path(RGUARD_TEST_SOURCE_DIR).parent_path();
  int scripts = 0;
  for (const auto& entry : fs::directory_iterator(root / "bench"))
    if (entry.path().extension() == ".sh") {
      INFO(entry.path().string());
      CHECK(shell("bash -n " + entry.path().string()).status == 0);
      ++scripts;
    }
  CHECK(scripts >= 5);
  // Python scripts parse (ast, so no __pycache__ is written into the tree).
  for (const fs::path& folder : {root / "bench", root / "scripts"})
    for (const auto& entry : fs::directory_iterator(folder))
      if (entry.path().extension() == ".py") {
        INFO(entry.path().string());
        CHECK(shell("/usr/bin/python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' " + entry.path().string())
                  .status == 0);
      }
  const auto cost = shell("/usr/bin/python3 " + (root / "bench/sequential_cost.py").string());
  INFO(cost.text);
  CHECK(cost.status == 0);
  CHECK(cost.text.find("mixture CS") != std::string::npos);
  const auto out = shell("/usr/bin/python3 " + (root / "bench/reference/certify_reference.py").string() + " --model " +
                         (root / "tests/fixtures/tiny_embedder.pt").string() +
                         " --n 64 --batch 32 --threads 1 --random-shape 1,12,12 --queries 2");
  INFO(out.text);
  CHECK(out.status == 0);
  CHECK(out.text.find("\"samples_per_s\"") != std::string::npos);
}

TEST_CASE("three --shard slices and a 2-rank mpirun give the certificates of a single-process run") {
  const fs::path dir = resume_workspace("rguard_test_shards");
  const std::string spec = (dir / "resume.yaml").string();
  const std::string small = " --set certifier.n=600 --set threads=1";
  auto single = rguard("run " + spec + small + " --set output=" + (dir / "single").string());
  REQUIRE(single.status == 0);
  auto same_certificates = [&](const fs::path& run) {
    for (const char* file : {"certificates.csv", "metrics.csv", "certificates.h5"}) {
      INFO(run.string() << " " << file);
      CHECK(read(run / "resume" / file) == read(dir / "single" / "resume" / file));
    }
  };

  // Job-array style: three slices into their own caches, merged, then one run writes.
  std::vector<std::string> caches;
  for (int i = 0; i < 3; ++i) {
    const fs::path out = dir / fmt::format("slice{}", i);
    auto slice = rguard(fmt::format("run {}{} --set output={} --shard {}/3", spec, small, out.string(), i));
    INFO(slice.text);
    CHECK(slice.status == 0);
    CHECK(contains(slice.text, fmt::format("shard {}/3", i)));
    CHECK(!fs::exists(out / "resume"));  // a slice writes no outputs
    caches.push_back((out / "cache").string());
  }
  CHECK(count_files(dir / "slice0" / "cache" / "samples", ".h5") == 3);  // 8 blocks: 0, 3, 6
  CHECK(count_files(dir / "slice2" / "cache" / "samples", ".h5") == 2);  // 2, 5
  const std::string merged = (dir / "merged" / "cache").string();
  auto merge = rguard("cache merge " + caches[0] + " " + caches[1] + " " + caches[2] + " --cache " + merged);
  INFO(merge.text);
  CHECK(merge.status == 0);
  auto combined = rguard("run " + spec + small + " --set output=" + (dir / "merged").string());
  CHECK(contains(combined.text, "8 of 8 blocks reused"));
  same_certificates(dir / "merged");
  CHECK(contains(rguard("run " + spec + " --shard 3/3").text, "expected I/N with 0 <= I < N"));

  // mpirun: each rank samples its slice into the shared cache, rank 0 writes the outputs.
  // Without OpenMPI installed, the launcher's environment is given by hand to two processes.
  const std::string mpi_out = "output=" + (dir / "mpi").string();
  if (shell("command -v mpirun").status == 0) {
    auto mpi = shell("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -n 2 env -u "
                     "RGUARD_PLUGIN_PATH " + std::string(RGUARD_BINARY) + " run " + spec + small + " --set " + mpi_out);
    INFO(mpi.text);
    CHECK(mpi.status == 0);
    CHECK(contains(mpi.text, "rank 1/2:"));
  } else {
    const pid_t rank1 = spawn({"run", spec, "--set", "certifier.n=600", "--set", "threads=1", "--set", mpi_out},
                              {"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2"});
    const pid_t rank0 = spawn({"run", spec, "--set", "certifier.n=600", "--set", "threads=1", "--set", mpi_out},
                              {"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2"});
    CHECK(wait_for(rank0) == 0);
    CHECK(wait_for(rank1) == 0);
  }
  same_certificates(dir / "mpi");

  // A rank that died: its blocks are missing when rank 0 gets there, and rank 0 samples them.
  const std::string dead_out = "output=" + (dir / "dead").string();
  auto lone = shell("env -u RGUARD_PLUGIN_PATH OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 " + std::string(RGUARD_BINARY) +
                    " run " + spec + small + " --set " + dead_out);
  INFO(lone.text);
  CHECK(lone.status == 0);
  CHECK(contains(lone.text, "mpi: rank 1/2: "));
  CHECK(!contains(lone.text, "mpi: rank 0/2: "));
  same_certificates(dir / "dead");
  fs::remove_all(dir);
}

TEST_CASE("plugin SDK: example plugins build against the installed package and a pipeline loads them") {
  // cmake --install into a fresh prefix, two out-of-tree CMake projects (an attack and a
  // backbone) with find_package(rguard) + rguard_add_plugin, then the installed binary.
  const fs::path root = fs::path(RGUARD_TEST_SOURCE_DIR).parent_path();
  const fs::path work = fs::temp_directory_path() / "rguard_test_sdk";
  const auto out = shell("bash " + (root / "examples/plugins/check_sdk.sh").string() + " " +
                         fs::path(RGUARD_BINARY).parent_path().string() + " " + work.string());
  INFO(out.text);
  CHECK(out.status == 0);
  CHECK(contains(out.text, "mlp, 1 epoch(s) of training"));
  CHECK(contains(out.text, "robust_recall/sign_flip/0.5/smoothed"));
  CHECK(contains(out.text, "0 violations"));
  CHECK(fs::exists(work / "prefix" / "lib" / "cmake" / "rguard" / "rguardConfig.cmake"));
  // Installed: exactly core/include/rguard (what a plugin needs), none of the core's own
  // headers (core/src/<stage>/*.hpp).
  std::set<std::string> shipped, plugin_facing;
  for (const auto& entry : fs::recursive_directory_iterator(work / "prefix" / "include")) {
    if (entry.is_regular_file()) shipped.insert(fs::relative(entry.path(), work / "prefix" / "include").string());
  }
  for (const auto& entry : fs::directory_iterator(root / "core" / "include" / "rguard")) {
    plugin_facing.insert("rguard/" + entry.path().filename().string());
  }
  CHECK(shipped == plugin_facing);
  CHECK(shipped.count("rguard/plugin.hpp") == 1);
  for (const char* internal : {"rguard/executor.hpp", "rguard/cache.hpp", "rguard/spec.hpp", "rguard/report.hpp"}) {
    CHECK_MESSAGE(shipped.count(internal) == 0, internal);
  }
  fs::remove_all(work);
}
