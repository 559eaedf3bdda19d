#include "output/outputs.hpp"

#include <H5public.h>
#include <fmt/format.h>
#include <torch/version.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "rguard/error.hpp"
#include "attack/attack_io.hpp"
#include "cache/cache.hpp"
#include "io/csv.hpp"
#include "io/h5io.hpp"
#include "rguard/hash.hpp"
#include "rguard/plugin.hpp"
#include "output/run_folder.hpp"

namespace rguard {

namespace fs = std::filesystem;

namespace {

std::string git_revision() {
  const std::string command = fmt::format("git -C '{}' describe --always --dirty --abbrev=40 2>/dev/null", RGUARD_SOURCE_DIR);
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[256];
    while (std::fgets(buffer, sizeof buffer, pipe)) out += buffer;
    ::pclose(pipe);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.empty() ? "unknown" : out;
}

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw Error(fmt::format("{}: cannot write (disk full or folder not writable?)", path.string()));
}

std::string cohen_tsv(const PointResult& point) {
  std::string out = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n";
  for (std::size_t i = 0; i < point.certificates.size(); ++i) {
    const Certificate& c = point.certificates[i];
    out += fmt::format("{}\t{}\t{}\t{}\t{}\t{:.4f}\n", c.query_id, c.label, c.abstain ? -1 : c.predict_label, c.radius,
                       c.abstain ? 0 : static_cast<int>(c.correct), point.seconds[i]);
  }
  return out;
}

// What each output file holds (bytes and content hash), so that readers such as `rguard
// report` can tell a file changed or cut after the run from the run's own output.
nlohmann::json file_digests(const fs::path& dir) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& item : fs::directory_iterator(dir)) {
    if (!item.is_regular_file()) continue;
    const auto hash = hash_file(item.path().string());
    if (!hash) throw Error(fmt::format("{}: cannot read back a file just written", item.path().string()));
    files[item.path().filename().string()] = {{"bytes", item.file_size()}, {"hash", *hash}};
  }
  return files;
}

nlohmann::json manifest(const ExperimentSpec& spec, const RunResult& result, const fs::path& written) {
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : result.stages)
    stages.push_back({{"point", s.point}, {"stage", s.stage}, {"status", s.status}, {"seconds", s.seconds},
                      {"key", s.key}, {"detail", s.detail}});
  nlohmann::json points = nlohmann::json::array();
  for (const auto& point : spec.points) {
    nlohmann::json plugins = nlohmann::json::array();
    auto add = [&](const StageSpec& s) {
      plugins.push_back({{"section", s.section}, {"kind", to_string(s.kind)}, {"name", s.plugin},
                         {"version", s.entry ? s.entry->version : "?"}});
    };
    const PipelineSpec& p = point.spec;
    for (const auto* s : {&p.dataset, &p.backbone, &p.noise, &p.certifier}) add(*s);
    if (p.denoiser) add(*p.denoiser);
    for (const auto& s : p.attacks) add(s);
    for (const auto& s : p.metrics) add(s);
    nlohmann::json assignment = nlohmann::json::object();
    for (const auto& [key, value] : point.assignment) assignment[key] = value;
    nlohmann::json record = {{"name", point.name}, {"sweep", assignment}, {"seed", p.seed}, {"plugins", plugins}};
    for (const auto& done : result.points)
      if (done.name == point.name) {
        record["train_seconds"] = done.train_seconds;
        if (p.denoiser) record["denoiser_train_seconds"] = done.denoiser_train_seconds;
      }
    points.push_back(std::move(record));
  }
  const PipelineSpec& first = spec.points.front().spec;
  unsigned hdf5_major = 0, hdf5_minor = 0, hdf5_release = 0;
  H5get_libversion(&hdf5_major, &hdf5_minor, &hdf5_release);
  return {{"rguard_version", RGUARD_VERSION},
          {"plugin_api_version", kPluginApiVersion},
          {"git_revision", git_revision()},
          {"libtorch_version", TORCH_VERSION},
          {"hdf5_version", fmt::format("{}.{}.{}", hdf5_major, hdf5_minor, hdf5_release)},
          {"host", host_name()},
          {"finished_at", utc_now()},
          {"spec_file", spec.file},
          {"name", spec.name},
          {"threads", first.threads},
          {"device", first.device},
          {"seconds", result.seconds},
          {"stages", stages},
          {"points", points},
          {"file_hash", kContentHash}, {"files", file_digests(written)}};
}

std::string attacks_csv(const RunResult& result) {
  std::string out = "point,attack,eps,query_id,certified_radius,perturbation,base_correct,smoothed_correct,smoothed_margin,status\n";
  static const char* status_names[] = {"not_audited", "confirmed", "inconclusive", "violation", "skipped"};
  for (const auto& point : result.points)
    for (const auto& o : point.attacks)
      for (std::size_t i = 0; i < o.query_id.size(); ++i)
        out += fmt::format("{},{},{},{},{},{},{},{},{},{}\n", csv_field(point.name), csv_field(o.attack), o.eps, o.query_id[i],
                           point.certificates[i].radius, o.perturbation[i], static_cast<int>(o.base_correct[i]),
                           static_cast<int>(o.smoothed_correct[i]), o.smoothed_margin[i], status_names[o.status[i]]);
  return out;
}

// Each value with what its metric declared it measures (rguard/metric.hpp): `rguard report`
// reads these columns, never the names.
std::string metrics_csv(const RunResult& result) {
  std::string out = "point,sigma,metric,value,measure,k,radius,attack,model\n";
  for (const auto& point : result.points)
    for (const auto& m : point.metrics)
      out += fmt::format("{},{},{},{},{},{},{},{},{}\n", csv_field(point.name), point.sigma, csv_field(m.name), m.value,
                         csv_field(m.measure), m.k, std::isnan(m.radius) ? std::string() : fmt::format("{}", m.radius),
                         csv_field(m.attack), csv_field(m.model));
  return out;
}

// Arrays of q rows: the Recall@K radii, the certifier's evidence (what its radii are
// recomputed from: F-hat, second moments, levels and counts ...) and metrics' query columns.
void write_per_query(H5File& file, const std::string& group, const PointResult& point) {
  const auto q = static_cast<std::uint64_t>(point.certificates.size());
  auto matrix = [&](const std::string& name, auto row_of) {
    const std::vector<double>& first = row_of(point.certificates.front());
    std::vector<double> values;
    for (const auto& c : point.certificates) {
      const std::vector<double>& row = row_of(c);
      if (row.size() != first.size())
        throw Error(fmt::format("certificates.h5: '{}' has {} values for query {} but {} for query {}; a certifier must "
                                "give every query of a point the same layout",
                                name, row.size(), c.query_id, first.size(), point.certificates.front().query_id));
      values.insert(values.end(), row.begin(), row.end());
    }
    if (!first.empty()) file.write(group + "/" + name, values.data(), {q, static_cast<std::uint64_t>(first.size())});
  };
  matrix("recall_radius", [](const Certificate& c) -> const std::vector<double>& { return c.rank_radius; });
  for (std::size_t e = 0; e < point.certificates.front().evidence.size(); ++e) {
    const std::string& name = point.certificates.front().evidence[e].first;
    matrix(name, [&](const Certificate& c) -> const std::vector<double>& {
      if (e >= c.evidence.size() || c.evidence[e].first != name)
        throw Error(fmt::format("certificates.h5: query {} has no evidence '{}' in place {}", c.query_id, name, e));
      return c.evidence[e].second;
    });
  }
  for (const auto& column : point.columns) file.write(group + "/" + column.name, column.values);
}

void write_h5(const fs::path& path, const RunResult& result) {
  H5File file = H5File::create(path.string());
  // Each model's gallery once; each point names its own (points of a sweep may certify
  // against different models).
  for (const auto& gallery : result.galleries) {
    const std::string group = "/galleries/" + gallery.key;
    file.write(group + "/embedding", gallery.embedding.data(),
               {static_cast<std::uint64_t>(gallery.label.size()), static_cast<std::uint64_t>(gallery.dim)});
    file.write(group + "/label", gallery.label);
  }
  for (const auto& point : result.points) {
    const std::string group = "/points/" + point.name;
    const auto q = static_cast<std::uint64_t>(point.certificates.size());
    auto column = [&](const char* name, auto field) {
      using T = decltype(field(point.certificates.front()));
      std::vector<T> values;
      for (const auto& cert : point.certificates) values.push_back(field(cert));
      file.write(group + "/" + name, values);
    };
    const auto as_int = [](bool b) { return static_cast<std::int64_t>(b); };
    if (!point.certificates.empty()) {
      column("query_id", [](const Certificate& c) { return c.query_id; });
      column("query_label", [](const Certificate& c) { return c.label; });
      column("samples", [](const Certificate& c) { return c.n; });  // main samples drawn: n, or its look
      column("predict_index", [](const Certificate& c) { return c.predict_index; });
      column("abstain", [&](const Certificate& c) { return as_int(c.abstain); });
      column("correct", [&](const Certificate& c) { return as_int(c.correct); });
      column("radius_a", [](const Certificate& c) { return c.radius_a; });
      column("radius_b", [](const Certificate& c) { return c.radius_b; });
      column("radius_c", [](const Certificate& c) { return c.radius_c; });
      column("radius_d", [](const Certificate& c) { return c.radius_d; });
      column("radius", [](const Certificate& c) { return c.radius; });
      column("f_norm", [](const Certificate& c) { return c.f_norm; });
      column("d_pos", [](const Certificate& c) { return c.d_pos; });
      column("d_neg", [](const Certificate& c) { return c.d_neg; });
    }
    file.write(group + "/query_gallery_index", point.query_gallery_index);
    if (q > 0) write_per_query(file, group, point);
    for (const auto& o : point.attacks)
      write_attack_outcome(file, fmt::format("{}/attacks/{}/eps={}", group, o.attack, o.eps), o);
    file.set_attribute(group, "gallery", point.gallery);
    file.set_attribute(group, "sigma", point.sigma);
    file.set_attribute(group, "n", point.n);
    file.set_attribute(group, "alpha", point.alpha);
    file.set_attribute(group, "rho", point.rho);
    file.set_attribute(group, "selection", point.selection);
    for (const auto& [name, value] : point.certifier_notes) file.set_attribute(group, name, value);
  }
  file.close();
}

}  // namespace

std::string certificates_csv(const RunResult& result) {
  // Columns every certificate has, then those some point has (the union, in first-seen
  // order; a point without one leaves it empty): Recall@K radii and metrics' query columns.
  std::size_t ranks = 0;
  std::vector<std::string> extra;
  for (const auto& point : result.points) {
    for (const auto& c : point.certificates) ranks = std::max(ranks, c.rank_radius.size());
    for (const auto& column : point.columns)
      if (std::find(extra.begin(), extra.end(), column.name) == extra.end()) extra.push_back(column.name);
  }
  std::string out =
      "point,sigma,query_id,label,n,rho,f_norm,d_pos,d_neg,radius_a,radius_b,radius_c,radius_d,radius,abstain,correct,"
      "predict_index,predict_label";
  for (std::size_t k = 1; k <= ranks; ++k) out += fmt::format(",recall_radius@{}", k);
  for (const auto& name : extra) out += "," + csv_field(name);
  out += "\n";
  for (const auto& point : result.points)
    for (std::size_t q = 0; q < point.certificates.size(); ++q) {
      const Certificate& c = point.certificates[q];
      out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}", csv_field(point.name), point.sigma,
                         c.query_id, c.label, c.n, c.rho, c.f_norm, c.d_pos, c.d_neg, c.radius_a, c.radius_b, c.radius_c,
                         c.radius_d, c.radius, static_cast<int>(c.abstain), static_cast<int>(c.correct), c.predict_index,
                         c.predict_label);
      for (std::size_t k = 0; k < ranks; ++k) out += k < c.rank_radius.size() ? fmt::format(",{}", c.rank_radius[k]) : ",";
      for (const auto& name : extra) {
        const auto it = std::find_if(point.columns.begin(), point.columns.end(), [&](const auto& col) { return col.name == name; });
        out += it == point.columns.end() ? "," : fmt::format(",{}", it->values[q]);
      }
      out += "\n";
    }
  return out;
}

std::string summary_markdown(const ExperimentSpec& spec, const RunResult& result) {
  std::string out = fmt::format("# rguard run `{}`\n\nSpec: `{}`, {} point(s), {:.1f} s.\n\n", spec.name, spec.file,
                                result.points.size(), result.seconds);
  out += "| point | stage | status | seconds | detail |\n|---|---|---|---|---|\n";
  for (const auto& s : result.stages)
    out += fmt::format("| {} | {} | {} | {:.1f} | {} |\n", s.point, s.stage, s.status, s.seconds, s.detail);
  for (const auto& point : result.points) {
    out += fmt::format("\n## Point `{}`: sigma = {}, n = {}, alpha = {}, median rho = {:.4f}, {} queries\n\n", point.name,
                       point.sigma, point.n, point.alpha, point.rho, point.certificates.size());
    out += "| metric | value |\n|---|---|\n";
    for (const auto& m : point.metrics) out += fmt::format("| {} | {:.4f} |\n", m.name, m.value);
  }
  return out;
}

namespace {
// Records which cache entries the last run of this spec name used (rguard cache ls / gc).
void record_cache_use(const ExperimentSpec& spec, const RunResult& result) {
  const fs::path dir = fs::path(spec.cache_root) / "uses";
  fs::create_directories(dir);
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& [stage, key] : result.cache_entries) entries.push_back({{"stage", stage}, {"key", key}});
  const nlohmann::json use{{"name", spec.name}, {"spec_file", spec.file}, {"finished_at", utc_now()}, {"entries", entries}};
  const fs::path file = dir / (spec.name + ".json");
  // mkstemp: a new file of its own, never one a planted link points to.
  std::string temporary = (dir / fmt::format(".{}.json.XXXXXX", spec.name)).string();
  const int fd = ::mkstemp(temporary.data());
  if (fd < 0) throw Error(fmt::format("{}: cannot create a file there: {}", dir.string(), std::strerror(errno)));
  const std::string text = use.dump(1) + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool closed = ::close(fd) == 0;
  std::error_code ec;
  if (!written || !closed) {
    fs::remove(temporary, ec);
    throw Error(fmt::format("{}: cannot write (disk full?)", temporary));
  }
  ::chmod(temporary.c_str(), 0644);
  fs::rename(temporary, file, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw Error(fmt::format("{}: cannot replace: {}", file.string(), ec.message()));
  }
}
}  // namespace

std::string write_run_outputs(const ExperimentSpec& spec, const RunResult& result) {
  const fs::path root = spec.output_root;
  const fs::path final_dir = root / spec.name;
  const fs::path staging = run_folder::make_staging(root, spec.name);
  std::error_code ec;
  try {
    write_text(staging / "resolved.yaml", spec.resolved_yaml);
    write_text(staging / "certificates.csv", certificates_csv(result));
    write_text(staging / "metrics.csv", metrics_csv(result));
    if (std::any_of(result.points.begin(), result.points.end(), [](const auto& p) { return !p.attacks.empty(); }))
      write_text(staging / "attacks.csv", attacks_csv(result));
    for (const auto& point : result.points) write_text(staging / fmt::format("certify-{}.tsv", point.name), cohen_tsv(point));
    write_h5(staging / "certificates.h5", result);
    write_text(staging / "summary.md", summary_markdown(spec, result));
    write_text(staging / "manifest.json", manifest(spec, result, staging).dump(2) + "\n");
  } catch (const Error& e) {
    fs::remove_all(staging, ec);
    if (!fs::exists(final_dir)) throw;
    throw Error(fmt::format("{}; the outputs of the last finished run in {} are untouched", e.what(), final_dir.string()));
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  {
    // One swap at a time; what an interrupted one left is put right first.
    CacheLock lock((root / fmt::format(".{}.lock", spec.name)).string());
    run_folder::recover(root, spec.name);
    run_folder::swap_in(staging, root, spec.name);
  }
  record_cache_use(spec, result);
  return final_dir.string();
}

}  // namespace rguard
