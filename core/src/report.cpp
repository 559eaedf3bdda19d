#include "rguard/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "rguard/csv.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/normal.hpp"

namespace rguard {

namespace fs = std::filesystem;

namespace {

// One curve: one sweep point of one run.
struct Series {
  std::string label;
  double sigma = 0, rho = 0;  // rho: the median over queries
  std::int64_t n = 0;
  std::vector<double> radius;  // credited radius per query: 0 unless certified and correct
  std::vector<double> rhos;    // per query (the variance-adaptive bound differs per query)
  double smoothed_recall = 0, abstain_rate = 0, acr = 0;
  std::optional<double> base_recall;  // recall@1 of the clean base model, if measured
  std::vector<double> metric_radii;   // radii of certified_recall metrics
  double cap = 0;                     // largest radius a query can get at (sigma, median rho)
  std::int64_t at_cap = 0;
  // Empirical robust Recall@1 of the smoothed model: attack -> (eps -> value).
  std::map<std::string, std::map<double, double>> empirical;
};

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

// Largest radius at (sigma, rho): ||F-hat|| <= 1 caps each bound (docs/certificates.md).
double radius_cap(double sigma, double rho) {
  const double b = sigma * normal_quantile(1.0 - rho / 2.0);
  const double a = sigma * std::sqrt(M_PI / 2.0) * (1.0 - rho);
  return std::max(a, b);
}

// The files a report reads must be those the run wrote: manifest.json records each one's
// size and content hash. A file edited, cut or replaced since is refused, not reported.
void check_run_files(const fs::path& run, const std::vector<std::string>& names) {
  const fs::path manifest = run / "manifest.json";
  std::ifstream in(manifest);
  if (!in)
    throw Error(fmt::format("{}: not found; is {} a folder written by `rguard run`?", manifest.string(), run.string()));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: damaged ({}); rerun the pipeline (the cache makes it quick)", manifest.string(), e.what()));
  }
  if (!json.contains("files")) return;  // written before rguard recorded file hashes
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
    if (!hash || *hash != files[name].value("hash", "") || bytes != files[name].value("bytes", std::uintmax_t{0}))
      throw Error(fmt::format("{}: {} since the run wrote it (manifest.json records {} bytes, hash {}; found {}); the "
                              "report would not show what was certified. Rerun `rguard run` on its spec (the cache makes "
                              "it quick) or restore the file",
                              path.string(), present ? "changed" : "removed", files[name].value("bytes", std::uintmax_t{0}),
                              files[name].value("hash", "?"),
                              present ? fmt::format("{} bytes, hash {}", bytes, hash.value_or("?")) : "nothing"));
  }
}

std::vector<Series> read_run(const fs::path& run, bool prefix_run_name) {
  check_run_files(run, {"certificates.csv", "metrics.csv"});
  const fs::path certificates = run / "certificates.csv", metrics = run / "metrics.csv";
  const auto rows = read_csv(certificates);
  const auto& h = rows.front();
  const std::size_t c_point = column(h, "point", certificates), c_sigma = column(h, "sigma", certificates),
                    c_n = column(h, "n", certificates), c_rho = column(h, "rho", certificates),
                    c_radius = column(h, "radius", certificates), c_abstain = column(h, "abstain", certificates),
                    c_correct = column(h, "correct", certificates);
  std::map<std::string, Series> by_point;
  std::vector<std::string> order;
  std::map<std::string, std::int64_t> correct, abstained;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (r.size() != h.size()) throw Error(fmt::format("{}: line {} has {} fields, expected {}", certificates.string(), i + 1, r.size(), h.size()));
    auto [it, fresh] = by_point.try_emplace(r[c_point]);
    Series& s = it->second;
    if (fresh) {
      order.push_back(r[c_point]);
      s.label = prefix_run_name ? fmt::format("{}: {}", run.filename().string(), r[c_point]) : r[c_point];
      s.sigma = number(r[c_sigma], certificates);
      s.n = static_cast<std::int64_t>(number(r[c_n], certificates));
    }
    s.rhos.push_back(number(r[c_rho], certificates));
    const bool is_correct = r[c_correct] == "1", abstain = r[c_abstain] == "1";
    correct[r[c_point]] += is_correct;
    abstained[r[c_point]] += abstain;
    s.radius.push_back(!abstain && is_correct ? number(r[c_radius], certificates) : 0.0);
  }
  if (fs::exists(metrics)) {
    const auto m = read_csv(metrics);
    const std::size_t m_point = column(m.front(), "point", metrics), m_name = column(m.front(), "metric", metrics),
                      m_value = column(m.front(), "value", metrics);
    for (std::size_t i = 1; i < m.size(); ++i) {
      auto it = by_point.find(m[i][m_point]);
      if (it == by_point.end()) continue;
      const std::string& name = m[i][m_name];
      if (name == "recall@1") it->second.base_recall = number(m[i][m_value], metrics);
      if (name.rfind("certified_recall@", 0) == 0) it->second.metric_radii.push_back(number(name.substr(17), metrics));
      // robust_recall/<attack>/<eps>/smoothed
      if (name.rfind("robust_recall/", 0) == 0 && name.size() > 9 && name.substr(name.size() - 9) == "/smoothed") {
        const std::string rest = name.substr(14, name.size() - 14 - 9);
        const auto slash = rest.rfind('/');
        if (slash != std::string::npos)
          it->second.empirical[rest.substr(0, slash)][number(rest.substr(slash + 1), metrics)] = number(m[i][m_value], metrics);
      }
    }
  }
  std::vector<Series> out;
  for (const auto& name : order) {
    Series s = by_point[name];
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
    for (std::size_t q = 0; q < s.radius.size(); ++q) s.at_cap += s.radius[q] >= 0.98 * radius_cap(s.sigma, s.rhos[q]);
    out.push_back(std::move(s));
  }
  return out;
}

double certified_recall(const Series& s, double r) {
  double certified = 0;
  for (double v : s.radius) certified += v > r;
  return certified / static_cast<double>(s.radius.size());
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(fmt::format("{}: cannot write", path.string()));
}

std::string latex_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '_' || c == '&' || c == '%' || c == '#' || c == '$') out += '\\';
    out += c;
  }
  return out;
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// The table: one row per series; columns: sigma, n, base R@1, smoothed R@1, certified
// R@1 per radius, abstain rate, ACR. `best[c]` marks the best value of column c.
struct Table {
  std::vector<std::string> columns;
  std::vector<std::string> labels;
  std::vector<std::vector<double>> values;  // NaN = not measured
  std::vector<std::vector<bool>> best;
};

Table make_table(const std::vector<Series>& series, const std::vector<double>& radii) {
  Table t;
  t.columns = {"sigma", "n", "base R@1", "smoothed R@1"};
  for (double r : radii) t.columns.push_back(fmt::format("R@1 r={}", r));
  t.columns.push_back("abstain");
  t.columns.push_back("ACR");
  for (const auto& s : series) {
    t.labels.push_back(s.label);
    std::vector<double> row{s.sigma, static_cast<double>(s.n), s.base_recall.value_or(NAN), s.smoothed_recall};
    for (double r : radii) row.push_back(certified_recall(s, r));
    row.push_back(s.abstain_rate);
    row.push_back(s.acr);
    t.values.push_back(row);
  }
  // Best: highest, except abstain (lowest); sigma and n are settings, not results.
  t.best.assign(series.size(), std::vector<bool>(t.columns.size(), false));
  for (std::size_t c = 2; c < t.columns.size(); ++c) {
    const bool lower = t.columns[c] == "abstain";
    double best = lower ? INFINITY : -INFINITY, worst = -best;
    for (const auto& row : t.values)
      if (!std::isnan(row[c])) {
        best = lower ? std::min(best, row[c]) : std::max(best, row[c]);
        worst = lower ? std::max(worst, row[c]) : std::min(worst, row[c]);
      }
    if (series.size() > 1 && best != worst)  // a column where all agree marks nothing
      for (std::size_t i = 0; i < series.size(); ++i) t.best[i][c] = t.values[i][c] == best;
  }
  return t;
}

std::string cell(const Table& t, std::size_t i, std::size_t c) {
  const double v = t.values[i][c];
  if (std::isnan(v)) return "–";
  if (c <= 1) return fmt::format("{}", v);
  return t.columns[c] == "ACR" ? fmt::format("{:.4f}", v) : fmt::format("{:.3f}", v);
}

std::string markdown(const Table& t) {
  std::string out = "| point |";
  for (const auto& c : t.columns) out += " " + c + " |";
  out += "\n|---|";
  for (std::size_t c = 0; c < t.columns.size(); ++c) out += "---|";
  out += "\n";
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    out += "| " + t.labels[i] + " |";
    for (std::size_t c = 0; c < t.columns.size(); ++c)
      out += t.best[i][c] ? " **" + cell(t, i, c) + "** |" : " " + cell(t, i, c) + " |";
    out += "\n";
  }
  return out;
}

std::string csv(const Table& t) {
  std::string out = "point";
  for (const auto& c : t.columns) out += "," + csv_field(c);
  out += "\n";
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    out += csv_field(t.labels[i]);
    for (std::size_t c = 0; c < t.columns.size(); ++c) out += "," + (std::isnan(t.values[i][c]) ? "" : fmt::format("{}", t.values[i][c]));
    out += "\n";
  }
  // The last row names, per column, the point with the best value.
  out += "best";
  for (std::size_t c = 0; c < t.columns.size(); ++c) {
    std::string names;
    for (std::size_t i = 0; i < t.labels.size(); ++i)
      if (t.best[i][c]) names += (names.empty() ? "" : "; ") + t.labels[i];
    out += "," + csv_field(names);
  }
  return out + "\n";
}

std::string latex(const Table& t) {
  std::string out = "\\begin{tabular}{l" + std::string(t.columns.size(), 'r') + "}\n\\hline\npoint";
  for (const auto& c : t.columns) out += " & " + latex_escape(c);
  out += " \\\\\n\\hline\n";
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    out += latex_escape(t.labels[i]);
    for (std::size_t c = 0; c < t.columns.size(); ++c) {
      const std::string v = cell(t, i, c) == "–" ? "--" : cell(t, i, c);
      out += t.best[i][c] ? " & \\textbf{" + v + "}" : " & " + v;
    }
    out += " \\\\\n";
  }
  return out + "\\hline\n\\end{tabular}\n";
}

std::string html_table(const Table& t) {
  std::string out = "<table>\n<tr><th>point</th>";
  for (const auto& c : t.columns) out += "<th>" + html_escape(c) + "</th>";
  out += "</tr>\n";
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    out += "<tr><td>" + html_escape(t.labels[i]) + "</td>";
    for (std::size_t c = 0; c < t.columns.size(); ++c)
      out += t.best[i][c] ? "<td><b>" + cell(t, i, c) + "</b></td>" : "<td>" + cell(t, i, c) + "</td>";
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// Certified Recall@1 against the radius, one curve per series, as PNG and SVG.
bool plot(const fs::path& out, const std::vector<Series>& series, std::vector<std::string>& notes) {
  double max_radius = 0;
  for (const auto& s : series)
    for (double r : s.radius) max_radius = std::max(max_radius, r);
  double x_max = max_radius > 0 ? max_radius * 1.1 : 0.1;
  for (const auto& s : series)
    for (const auto& [attack, curve] : s.empirical)
      if (!curve.empty()) x_max = std::max(x_max, curve.rbegin()->first * 1.05);
  std::string data;
  for (const auto& s : series) {
    data += "# " + s.label + "\n";
    for (int i = 0; i <= 400; ++i) {
      const double r = x_max * i / 400.0;
      data += fmt::format("{} {}\n", r, certified_recall(s, r));
    }
    data += "\n\n";  // gnuplot data blocks are separated by two blank lines
  }
  std::vector<std::string> empirical_titles;
  for (const auto& s : series)
    for (const auto& [attack, curve] : s.empirical) {
      data += "# " + s.label + " " + attack + "\n";
      for (const auto& [eps, value] : curve) data += fmt::format("{} {}\n", eps, value);
      data += "\n\n";
      empirical_titles.push_back(fmt::format("{}{}: empirical, {}", s.label, series.size() > 1 ? "" : "", attack));
    }
  write_text(out / "certified_recall.dat", data);
  std::string script;
  for (const char* terminal : {"pngcairo size 960,600 font 'DejaVu Sans,12'", "svg size 960,600 dynamic font 'DejaVu Sans,12'"}) {
    const bool png = std::string(terminal).rfind("png", 0) == 0;
    script += fmt::format("set terminal {}\nset output '{}'\n", terminal,
                          (out / (png ? "certified_recall.png" : "certified_recall.svg")).string());
    script +=
        "set title 'Certified Recall@1 vs l2 radius (solid); empirical robust Recall@1 of the smoothed model vs attack eps (dashed)' noenhanced\n"
        "set xlabel 'l2 radius, or attack eps (pixels in [0,1])' noenhanced\nset ylabel 'Recall@1' noenhanced\n"
        "set yrange [0:1.02]\nset xrange [0:*]\nset grid\nset key bottom right noenhanced box opaque\n";
    script += "plot ";
    for (std::size_t i = 0; i < series.size(); ++i) {
      std::string label = empirical_titles.empty() ? series[i].label : series[i].label + ": certified";
      std::replace(label.begin(), label.end(), '\'', '"');
      script += fmt::format("{}'{}' index {} with lines linewidth 2 title '{}'", i ? ", " : "",
                            (out / "certified_recall.dat").string(), i, label);
    }
    for (std::size_t j = 0; j < empirical_titles.size(); ++j) {
      std::string label = empirical_titles[j];
      std::replace(label.begin(), label.end(), '\'', '"');
      script += fmt::format(", '{}' index {} with linespoints dashtype 2 linewidth 2 pointtype {} title '{}'",
                            (out / "certified_recall.dat").string(), series.size() + j, 4 + j, label);
    }
    script += "\nunset output\n";
  }
  write_text(out / "certified_recall.gp", script);
  const std::string command = fmt::format("gnuplot '{}' 2> '{}'", (out / "certified_recall.gp").string(),
                                          (out / "gnuplot.log").string());
  if (std::system(command.c_str()) != 0) {
    notes.push_back(fmt::format("gnuplot failed; see {} (the tables were written)", (out / "gnuplot.log").string()));
    return false;
  }
  fs::remove(out / "gnuplot.log");
  return true;
}

}  // namespace

ReportResult write_report(const ReportOptions& options) {
  if (options.runs.empty()) throw Error("rguard report: name at least one run folder (e.g. results/quickstart)");
  std::vector<Series> series;
  for (const auto& run : options.runs) {
    if (!fs::is_directory(run)) throw Error(fmt::format("{}: not a run folder", run));
    for (auto& s : read_run(run, options.runs.size() > 1)) series.push_back(std::move(s));
  }
  std::vector<double> radii = options.radii;
  if (radii.empty()) {
    std::set<double> found;
    for (const auto& s : series) found.insert(s.metric_radii.begin(), s.metric_radii.end());
    radii.assign(found.begin(), found.end());
    if (radii.empty()) radii = {0, 0.05, 0.1, 0.2, 0.5};
  }
  const fs::path out = options.out.empty() ? fs::path(options.runs.front()) / "report" : fs::path(options.out);
  fs::create_directories(out);

  ReportResult result;
  result.out_dir = out.string();
  for (const auto& s : series) {
    if (s.at_cap > 0)
      result.notes.push_back(fmt::format(
          "{}: {} of {} queries reach the radius cap {:.4f} = max(sigma Phi^-1(1 - rho/2), sigma sqrt(pi/2)(1 - rho)) "
          "at sigma = {}, median rho = {:.4f} (each query's own rho counts); more samples (larger n, smaller rho) raise the cap",
          s.label, s.at_cap, s.radius.size(), s.cap, s.sigma, s.rho));
  }
  const Table table = make_table(series, radii);
  std::string empirical_md;
  for (const auto& s : series)
    for (const auto& [attack, curve] : s.empirical) {
      if (empirical_md.empty()) empirical_md = "\n\nEmpirical robust Recall@1 of the smoothed model (F-hat re-estimated at the attacked query):\n\n| point | attack | eps: Recall@1 |\n|---|---|---|\n";
      std::vector<std::string> cells;
      for (const auto& [eps, value] : curve) cells.push_back(fmt::format("{}: {:.3f}", eps, value));
      empirical_md += fmt::format("| {} | {} | {} |\n", s.label, attack, fmt::join(cells, ", "));
    }
  write_text(out / "table.md", markdown(table) + empirical_md);
  write_text(out / "table.csv", csv(table));
  write_text(out / "table.tex", latex(table));
  result.files = {"table.md", "table.csv", "table.tex"};
  if (!have_gnuplot()) {
    result.notes.push_back("gnuplot is not installed, so no plots were drawn (install Debian's gnuplot-nox; "
                           "scripts/setup.sh does); the tables were written");
  } else if (plot(out, series, result.notes)) {
    result.plotted = true;
    result.files.push_back("certified_recall.png");
    result.files.push_back("certified_recall.svg");
  }
  std::string notes_html;
  for (const auto& n : result.notes) notes_html += "<li>" + html_escape(n) + "</li>\n";
  std::string runs;
  for (const auto& r : options.runs) runs += (runs.empty() ? "" : ", ") + html_escape(r);
  const std::string html = fmt::format(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rguard report</title>\n"
      "<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
      "td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style>\n"
      "</head><body>\n<h1>rguard report</h1>\n<p>Runs: {}</p>\n{}"
      "<h2>Certified Recall@1 at selected radii</h2>\n{}<p>Best value per column in bold. Radii are l2 distances "
      "in [0,1] pixel units; base R@1 is the clean base model, smoothed R@1 the smoothed model without a "
      "certificate.</p>\n{}</body></html>\n",
      runs, result.plotted ? "<img src=\"certified_recall.svg\" alt=\"certified Recall@1 vs radius\" width=\"960\">\n" : "",
      html_table(table), notes_html.empty() ? "" : "<h2>Notes</h2>\n<ul>\n" + notes_html + "</ul>\n");
  write_text(out / "index.html", html);
  result.files.push_back("index.html");
  return result;
}

}  // namespace rguard
