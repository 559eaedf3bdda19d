#include "report/report.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "report/report_data.hpp"
#include "report/report_views.hpp"
#include "rguard/error.hpp"
#include "io/spawn.hpp"

namespace rguard {

namespace fs = std::filesystem;
using namespace report;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(fmt::format("{}: cannot write", path.string()));
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return out;
}

// The output folder: created here, or refused with what is in the way.
fs::path prepare_out(const ReportOptions& options) {
  const fs::path out = options.out.empty() ? fs::path(options.runs.front()) / "report" : fs::path(options.out);
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw Error(fmt::format("{}: the report folder is in the way: it is not a folder; choose another with --out", out.string()));
  fs::create_directories(out, ec);
  if (ec)
    throw Error(fmt::format("{}: cannot create the report folder ({}); choose another with --out", out.string(), ec.message()));
  return out;
}

}  // namespace

ReportResult write_report(const ReportOptions& options) {
  if (options.runs.empty()) throw Error("rguard report: name at least one run folder (e.g. results/quickstart)");
  for (double r : options.radii)
    if (!(r >= 0) || !std::isfinite(r))
      throw Error(fmt::format("--radii: {} is not a radius; expected finite l2 radii >= 0, e.g. --radii 0 0.05 0.1", r));
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
  const fs::path out = prepare_out(options);

  ReportResult result;
  result.out_dir = out.string();
  for (const auto& s : series)
    if (s.at_cap > 0)
      result.notes.push_back(fmt::format(
          "{}: {} of {} queries reach the cap {:.4f} of the mean-based certificates = max(sigma Phi^-1(1 - rho/2), "
          "sigma sqrt(pi/2)(1 - rho)) at sigma = {}, median rho = {:.4f}; more samples (smaller rho) or certificate D "
          "(certifier.selection > 0) go past it",
          s.label, s.at_cap, s.radius.size(), s.cap, s.sigma, s.rho));
  std::vector<Table> tables{recall_table(series, radii), recall_at_k_table(series, radii), certificate_table(series, radii)};
  std::string md, html_tables;
  for (const auto& t : tables) {
    md += (md.empty() ? "" : "\n") + fmt::format("## {}\n\n", t.title) + markdown(t);
    html_tables += fmt::format("<h2>{}</h2>\n", html_escape(t.title)) + html(t);
  }
  std::string empirical_md;
  for (const auto& s : series)
    for (const auto& [attack, curve] : s.empirical) {
      if (empirical_md.empty())
        empirical_md = "\n## Empirical robust Recall@1 of the smoothed model\n\nF-hat re-estimated at the attacked query.\n\n"
                       "| point | attack | eps: Recall@1 |\n|---|---|---|\n";
      std::vector<std::string> cells;
      for (const auto& [eps, value] : curve) cells.push_back(fmt::format("{}: {:.3f}", eps, value));
      empirical_md += fmt::format("| {} | {} | {} |\n", s.label, attack, fmt::join(cells, ", "));
    }
  write_text(out / "table.md", md + empirical_md);
  write_text(out / "table.csv", csv(tables[0]));
  write_text(out / "table_recall_at_k.csv", csv(tables[1]));
  write_text(out / "table_certificates.csv", csv(tables[2]));
  write_text(out / "table.tex", latex(tables[0]));
  result.files = {"table.md", "table.csv", "table_recall_at_k.csv", "table_certificates.csv", "table.tex"};
  std::vector<std::string> plots;
  if (const fs::path gnuplot = find_program("gnuplot"); gnuplot.empty())
    result.notes.push_back("gnuplot is not installed, so no plots were drawn (install Debian's gnuplot-nox; "
                           "scripts/setup.sh does); the tables were written");
  else
    plots = draw_plots(gnuplot, out, series, result.notes);
  result.plotted = !plots.empty();
  result.files.insert(result.files.end(), plots.begin(), plots.end());

  std::string figures;
  for (const auto& file : plots)
    if (file.size() > 4 && file.substr(file.size() - 4) == ".svg")
      figures += fmt::format("<figure><img src=\"{}\" alt=\"{}\"></figure>\n", file, file.substr(0, file.size() - 4));
  std::string notes_html;
  for (const auto& n : result.notes) notes_html += "<li>" + html_escape(n) + "</li>\n";
  std::string runs;
  for (const auto& r : options.runs) runs += (runs.empty() ? "" : ", ") + html_escape(r);
  // At any width the page keeps its layout: figures shrink to the page, tables scroll in
  // their own box.
  const std::string page = fmt::format(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
      "<title>rguard report</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:1600px}}"
      "img{{max-width:100%;height:auto}}figure{{margin:1em 0}}.scroll{{overflow-x:auto;max-width:100%}}"
      "table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}}"
      "td:first-child,th:first-child{{text-align:left;position:sticky;left:0;background:#fff}}</style>\n"
      "</head><body>\n<h1>rguard report</h1>\n<p>Runs: {}</p>\n{}{}<p>Best value per column in bold (first table). "
      "Radii are l2 distances in [0,1] pixel units; base R@1 is the clean base model, smoothed R@1 the smoothed model "
      "without a certificate; certified Recall@K counts a query when a positive is certified to stay among its K nearest "
      "gallery items.</p>\n{}</body></html>\n",
      runs, figures, html_tables, notes_html.empty() ? "" : "<h2>Notes</h2>\n<ul>\n" + notes_html + "</ul>\n");
  write_text(out / "index.html", page);
  result.files.push_back("index.html");
  return result;
}

}  // namespace rguard
