#include "report/report_data.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "io/csv.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/normal.hpp"

namespace rguard::report {

namespace fs = std::filesystem;

namespace {

std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: not found; is this a folder written by `rguard run`?", path.string()));
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(csv_split(line));
  if (rows.empty()) throw Error(fmt::format("{}: empty file", path.string()));
  return rows;
}

std::size_t column(const std::vector<std::string>& header, const std::string& name, const fs::path& path) {
  const auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end()) throw Error(fmt::format("{}: no column '{}'", path.string(), name));
  return static_cast<std::size_t>(it - header.begin());
}

double number(const std::string& text, const fs::path& path) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (...) {
  }
  if (text == "inf") return INFINITY;
  throw Error(fmt::format("{}: '{}' is not a number", path.string(), text));
}

// The files a report reads must be those the run wrote: manifest.json records each one's
// size and content hash. A file edited, cut or replaced since is refused, not reported.
// Returns the manifest.
nlohmann::json check_run_files(const fs::path& run, const std::vector<std::string>& names) {
  const fs::path manifest = run / "manifest.json";
  std::error_code ec;
  // Only regular files are read: a FIFO would block, a device never end.
  std::vector<fs::path> paths{manifest};
  for (const auto& name : names) paths.push_back(run / name);
  for (const auto& path : paths)
    if (fs::exists(fs::symlink_status(path, ec)) && !fs::is_regular_file(path, ec))
      throw Error(fmt::format("{}: not a regular file; a run folder holds the files `rguard run` wrote", path.string()));
  std::ifstream in(manifest);
  if (!in)
    throw Error(fmt::format("{}: not found; is {} a folder written by `rguard run`?", manifest.string(), run.string()));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: damaged ({}); rerun the pipeline (the cache makes it quick)", manifest.string(), e.what()));
  }
  if (!json.is_object() || !json.contains("files") || !json["files"].is_object())
    throw Error(fmt::format("{}: records no file hashes (damaged, or written by an rguard older than this report); rerun "
                            "`rguard run` on its spec (the cache makes it quick)",
                            manifest.string()));
  const auto hash_name = json.contains("file_hash") && json["file_hash"].is_string()
                             ? json["file_hash"].get<std::string>()
                             : std::string("64-bit, unnamed");
  if (hash_name != kContentHash)
    throw Error(fmt::format("{}: written by an older rguard: its file hashes are {}, this rguard checks {}; rerun "
                            "`rguard run` on its spec to report it (the cache makes it quick)",
                            manifest.string(), hash_name, kContentHash));
  const auto& files = json["files"];
  for (const auto& name : names) {
    const fs::path path = run / name;
    std::error_code ec;
    const bool present = fs::exists(path, ec);
    if (!files.contains(name)) {
      if (present)
        throw Error(fmt::format("{}: not written by the run of {} (manifest.json does not list it)", path.string(),
                                manifest.string()));
      continue;
    }
    const auto hash = present ? hash_file(path.string()) : std::nullopt;
    const auto bytes = present ? fs::file_size(path, ec) : 0;
    if (!files[name].is_object())
      throw Error(fmt::format("{}: its record of {} is damaged; rerun `rguard run`", manifest.string(), name));
    if (!hash || *hash != files[name].value("hash", "") || bytes != files[name].value("bytes", std::uintmax_t{0}))
      throw Error(fmt::format("{}: {} since the run wrote it (manifest.json records {} bytes, hash {}; found {}); the "
                              "report would not show what was certified. Rerun `rguard run` on its spec (the cache makes "
                              "it quick) or restore the file",
                              path.string(), present ? "changed" : "removed", files[name].value("bytes", std::uintmax_t{0}),
                              files[name].value("hash", "?"),
                              present ? fmt::format("{} bytes, hash {}", bytes, hash.value_or("?")) : "nothing"));
  }
  return json;
}

// "noise.sigma=0.5,backbone.train.objective=noise" -> its key=value items (a value may hold
// commas inside brackets or braces, as YAML flow lists do).
std::vector<std::pair<std::string, std::string>> point_items(const std::string& point) {
  std::vector<std::pair<std::string, std::string>> items;
  std::string current;
  int depth = 0;
  auto flush = [&] {
    const std::size_t eq = current.find('=');
    items.emplace_back(current.substr(0, eq), eq == std::string::npos ? "" : current.substr(eq + 1));
    current.clear();
  };
  for (char c : point) {
    depth += (c == '[' || c == '{') - (c == ']' || c == '}');
    if (c == ',' && depth == 0) {
      flush();
      continue;
    }
    current += c;
  }
  flush();
  return items;
}

// Legends and tables name a point by its values under the last part of each key
// ("sigma=0.5, objective=noise"), or under the full key where two keys of the run end alike.
std::map<std::string, std::string> display_names(const std::vector<std::string>& points) {
  auto tail = [](const std::string& key) { return key.substr(key.rfind('.') + 1); };
  std::map<std::string, std::set<std::string>> keys_by_tail;
  for (const auto& point : points)
    for (const auto& item : point_items(point)) keys_by_tail[tail(item.first)].insert(item.first);
  std::map<std::string, std::string> names;
  for (const auto& point : points) {
    std::string name;
    for (const auto& [key, value] : point_items(point)) {
      if (value.empty()) {  // "main", or a name that is not key=value
        name = point;
        break;
      }
      name += fmt::format("{}{}={}", name.empty() ? "" : ", ", keys_by_tail[tail(key)].size() > 1 ? key : tail(key), value);
    }
    names[point] = name;
  }
  return names;
}

}  // namespace

double radius_cap(double sigma, double rho) {
  const double b = sigma * normal_quantile(1.0 - rho / 2.0);
  const double a = sigma * std::sqrt(M_PI / 2.0) * (1.0 - rho);
  return std::max(a, b);
}

double certified_fraction(const std::vector<double>& radius, double r) {
  double certified = 0;
  for (double v : radius) certified += v > r;
  return radius.empty() ? 0.0 : certified / static_cast<double>(radius.size());
}

std::vector<Series> read_run(const fs::path& run, bool prefix_run_name) {
  const nlohmann::json manifest = check_run_files(run, {"certificates.csv", "metrics.csv"});
  const fs::path certificates = run / "certificates.csv", metrics = run / "metrics.csv";
  const auto rows = read_csv(certificates);
  const auto& h = rows.front();
  const std::size_t c_point = column(h, "point", certificates), c_sigma = column(h, "sigma", certificates),
                    c_n = column(h, "n", certificates), c_rho = column(h, "rho", certificates),
                    c_radius = column(h, "radius", certificates), c_abstain = column(h, "abstain", certificates),
                    c_correct = column(h, "correct", certificates);
  // Each certificate's radius, and the Recall@K radii, where the run has them.
  std::vector<std::pair<std::string, std::size_t>> certificate_columns;
  for (const char* name : {"a", "b", "c", "d"})
    if (const auto it = std::find(h.begin(), h.end(), std::string("radius_") + name); it != h.end())
      certificate_columns.emplace_back(std::string(1, static_cast<char>(std::toupper(*name))), static_cast<std::size_t>(it - h.begin()));
  std::vector<std::pair<std::int64_t, std::size_t>> recall_columns;
  for (std::size_t c = 0; c < h.size(); ++c)
    if (h[c].rfind("recall_radius@", 0) == 0 && h[c] != "recall_radius@1")
      recall_columns.emplace_back(std::stoll(h[c].substr(14)), c);
  std::map<std::string, Series> by_point;
  std::vector<std::string> order;
  std::map<std::string, std::int64_t> correct, abstained;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (r.size() != h.size())
      throw Error(fmt::format("{}: line {} has {} fields, expected {}", certificates.string(), i + 1, r.size(), h.size()));
    auto [it, fresh] = by_point.try_emplace(r[c_point]);
    Series& s = it->second;
    if (fresh) {
      order.push_back(r[c_point]);
      s.point = r[c_point];
      s.sigma = number(r[c_sigma], certificates);
    }
    // n: the most a query drew (with sequential sampling, queries stop at different looks).
    s.samples.push_back(number(r[c_n], certificates));
    s.n = std::max(s.n, static_cast<std::int64_t>(s.samples.back()));
    s.rhos.push_back(number(r[c_rho], certificates));
    const bool is_correct = r[c_correct] == "1", abstain = r[c_abstain] == "1";
    correct[r[c_point]] += is_correct;
    abstained[r[c_point]] += abstain;
    s.radius.push_back(!abstain && is_correct ? number(r[c_radius], certificates) : 0.0);
    for (const auto& [name, c] : certificate_columns) {
      const double v = number(r[c], certificates);
      s.by_certificate[name].push_back(is_correct && v > 0 ? v : 0.0);
    }
    for (const auto& [k, c] : recall_columns)
      s.recall_at[k].push_back(r[c].empty() ? 0.0 : std::max(0.0, number(r[c], certificates)));
  }
  if (fs::exists(metrics)) {
    const auto m = read_csv(metrics);
    const auto& mh = m.front();
    const std::size_t m_point = column(mh, "point", metrics), m_value = column(mh, "value", metrics),
                      m_measure = column(mh, "measure", metrics), m_k = column(mh, "k", metrics),
                      m_radius = column(mh, "radius", metrics), m_attack = column(mh, "attack", metrics),
                      m_model = column(mh, "model", metrics);
    for (std::size_t i = 1; i < m.size(); ++i) {
      const auto& row = m[i];
      if (row.size() != mh.size())
        throw Error(fmt::format("{}: line {} has {} fields, expected {}", metrics.string(), i + 1, row.size(), mh.size()));
      auto it = by_point.find(row[m_point]);
      if (it == by_point.end()) continue;
      const std::string& measure = row[m_measure];
      const std::int64_t k = row[m_k].empty() ? 0 : static_cast<std::int64_t>(number(row[m_k], metrics));
      if (measure == "recall" && k == 1) it->second.base_recall = number(row[m_value], metrics);
      if (measure == "certified_recall" && k == 1) it->second.metric_radii.push_back(number(row[m_radius], metrics));
      if (measure == "certified_recall") it->second.metric_ks.insert(k);
      if (measure == "robust_recall" && row[m_model] == "smoothed")
        it->second.empirical[row[m_attack]][number(row[m_radius], metrics)] = number(row[m_value], metrics);
    }
  }
  // Training time is a record of the machine, kept in the manifest (outputs stay byte-identical).
  if (manifest.contains("points") && manifest["points"].is_array())
    for (const auto& point : manifest["points"])
      if (point.is_object() && point.value("train_seconds", nlohmann::json()).is_number())
        if (auto it = by_point.find(point.value("name", std::string())); it != by_point.end())
          it->second.train_seconds = point["train_seconds"].get<double>();
  std::vector<Series> out;
  const auto names = display_names(order);
  for (const auto& name : order) {
    Series s = by_point[name];
    s.label = prefix_run_name ? fmt::format("{}: {}", run.filename().string(), names.at(name)) : names.at(name);
    const double count = static_cast<double>(s.radius.size());
    s.smoothed_recall = static_cast<double>(correct[name]) / count;
    s.abstain_rate = static_cast<double>(abstained[name]) / count;
    double sum = 0;
    for (double r : s.radius) sum += r;
    s.acr = sum / count;
    std::vector<double> sorted = s.rhos;
    std::sort(sorted.begin(), sorted.end());
    s.rho = sorted[sorted.size() / 2];
    s.cap = radius_cap(s.sigma, s.rho);
    if (s.metric_ks.size() > 1)  // the K the metrics asked for
      std::erase_if(s.recall_at, [&](const auto& item) { return !s.metric_ks.count(item.first); });
    // The cap binds the mean-based certificates only; D is not capped by rho.
    const auto mean_based = s.by_certificate.count("D") ? s.by_certificate["D"] : std::vector<double>{};
    for (std::size_t q = 0; q < s.radius.size(); ++q)
      s.at_cap += s.radius[q] >= 0.98 * radius_cap(s.sigma, s.rhos[q]) && (mean_based.empty() || mean_based[q] < s.radius[q]);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace rguard::report
