// The report's plots, drawn by gnuplot (Debian's gnuplot-nox) as PNG and SVG.
//
// A gnuplot script is code: `!` runs a shell command, backquotes are substituted even
// inside double-quoted strings. So the script names only the constant files it writes
// (gnuplot runs in the report folder, started without a shell), and every text that comes
// from a run (point and run names) reaches it as a string literal whose bytes are all
// letters, digits, a few inert signs or octal escapes: data, never code.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "report_views.hpp"
#include "rguard/error.hpp"
#include "spawn.hpp"

namespace rguard::report {

namespace fs = std::filesystem;

namespace {

struct Curve {
  std::string title;
  std::vector<std::pair<double, double>> points;
  bool dashed = false;  // a measured curve (empirical robustness), drawn with points
};

struct Panel {
  std::string title;
  std::vector<Curve> curves;
};

// Certified fraction of a radius list on 400 steps of [0, x_max].
Curve certified_curve(const std::string& title, const std::vector<double>& radius, double x_max) {
  Curve c{title, {}, false};
  for (int i = 0; i <= 400; ++i) {
    const double r = x_max * i / 400.0;
    c.points.emplace_back(r, certified_fraction(radius, r));
  }
  return c;
}

// Control characters (a newline in a folder name) become spaces: a legend is one line, and
// a `# title` line of the data file stays one comment line.
std::string one_line(std::string text) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return text;
}

// A double-quoted gnuplot string literal holding `text`. Bytes outside a small inert set
// are written as 3-digit octal escapes (UTF-8 passes through byte by byte); a digit right
// after an escape is escaped too, since gnuplot reads up to 4 digits after "\0".
std::string gnuplot_string(const std::string& text) {
  std::string out = "\"";
  bool after_escape = false;
  for (const char c : one_line(text)) {
    const bool digit = c >= '0' && c <= '9';
    const bool inert = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || digit ||
                       (c != '\0' && std::strchr(" .,_=:()+-", c) != nullptr);
    if (inert && !(digit && after_escape)) {
      out += c;
      after_escape = false;
    } else {
      out += fmt::format("\\{:03o}", static_cast<unsigned char>(c));
      after_escape = true;
    }
  }
  return out + "\"";
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(fmt::format("{}: cannot write", path.string()));
}

// One figure (one panel, or a row of panels), legend outside the plotting area so it
// never covers a curve.
bool draw(const fs::path& gnuplot, const fs::path& out, const std::string& stem, const std::string& title, const std::vector<Panel>& panels,
          const std::string& xlabel, std::vector<std::string>& notes) {
  std::string data;
  for (const auto& panel : panels)
    for (const auto& curve : panel.curves) {
      data += "# " + one_line(panel.title + " " + curve.title) + "\n";
      for (const auto& [x, y] : curve.points) data += fmt::format("{} {}\n", x, y);
      data += "\n\n";  // gnuplot data blocks are separated by two blank lines
    }
  const std::string dat = stem + ".dat", gp = stem + ".gp", log = stem + ".log";
  write_text(out / dat, data);
  const int width = 960 + 360 * static_cast<int>(panels.size() - 1);
  // Long legends go below the plot, in as many columns as fit, so they never squeeze it.
  std::size_t longest = 0, curves = 0;
  for (const auto& panel : panels) {
    curves = std::max(curves, panel.curves.size());
    for (const auto& curve : panel.curves) longest = std::max(longest, curve.title.size());
  }
  const bool below = longest > 28;
  const int per_row = std::max(1, width / static_cast<int>(8 * longest + 80));
  const int height = 560 + (below ? 24 * static_cast<int>((curves + per_row - 1) / per_row) : 0);
  std::string script;
  for (const bool png : {true, false}) {
    script += fmt::format("set terminal {} size {},{} font 'DejaVu Sans,12'\nset output '{}{}'\n",
                          png ? "pngcairo" : "svg dynamic", width, height, stem, png ? ".png" : ".svg");
    script += fmt::format("set multiplot layout 1,{} title {} noenhanced\n", panels.size(), gnuplot_string(title));
    script += fmt::format("set xlabel {} noenhanced\nset ylabel 'fraction of queries' noenhanced\n",
                          gnuplot_string(xlabel));
    script += fmt::format("set yrange [0:1.02]\nset xrange [0:*]\nset grid\nset key {} noenhanced\n",
                          below ? "below" : "outside right top");
    std::size_t block = 0;
    for (const auto& panel : panels) {
      script += fmt::format("set title {} noenhanced\nplot ", gnuplot_string(panel.title));
      for (std::size_t c = 0; c < panel.curves.size(); ++c, ++block) {
        const Curve& curve = panel.curves[c];
        script += fmt::format("{}'{}' index {} with {} linewidth 2 title {}", c ? ", " : "", dat, block,
                              curve.dashed ? fmt::format("linespoints dashtype 2 pointtype {}", 4 + c) : "lines",
                              gnuplot_string(curve.title));
      }
      script += "\n";
    }
    script += "unset multiplot\nunset output\n";
  }
  write_text(out / gp, script);
  const ProgramRun run = run_program(gnuplot, {gp}, out, log);
  if (run.error != 0) {
    notes.push_back(fmt::format("gnuplot ({}) could not be started for {}: {} (the tables were written)",
                                gnuplot.string(), stem, std::strerror(run.error)));
    return false;
  }
  std::error_code ec;
  if (run.status != 0) {
    notes.push_back(fmt::format("gnuplot {} for {}; see {} (the tables were written)",
                                run.status < 0 ? "was ended by a signal" : fmt::format("failed (status {})", run.status),
                                stem, (out / log).string()));
    return false;
  }
  fs::remove(out / log, ec);
  return true;
}

}  // namespace

std::vector<std::string> draw_plots(const fs::path& gnuplot, const fs::path& out, const std::vector<Series>& series,
                                    std::vector<std::string>& notes) {
  std::vector<std::string> files;
  auto drawn = [&](const std::string& stem, bool ok) {
    if (!ok) return;
    files.push_back(stem + ".png");
    files.push_back(stem + ".svg");
  };
  // x range: the largest finite radius of any view, or the largest attack eps.
  double x_max = 0;
  bool empirical = false;
  for (const auto& s : series) {
    for (double r : s.radius) x_max = std::max(x_max, r);
    for (const auto& [k, radius] : s.recall_at)
      for (double r : radius)
        if (std::isfinite(r)) x_max = std::max(x_max, r);
    for (const auto& [attack, curve] : s.empirical)
      if (!curve.empty()) {
        empirical = true;
        x_max = std::max(x_max, curve.rbegin()->first);
      }
  }
  x_max = x_max > 0 ? x_max * 1.05 : 0.1;

  Panel recall{"", {}};
  for (const auto& s : series) {
    recall.curves.push_back(certified_curve(empirical ? s.label + ": certified" : s.label, s.radius, x_max));
    for (const auto& [attack, curve] : s.empirical)
      recall.curves.push_back({fmt::format("{}: empirical, {}", s.label, attack), {curve.begin(), curve.end()}, true});
  }
  // The title names only what is drawn.
  drawn("certified_recall",
        draw(gnuplot, out, "certified_recall",
             empirical ? "Certified Recall@1 vs l2 radius (lines); empirical robust Recall@1 of the smoothed model vs attack eps (dashed)"
                       : "Certified Recall@1 vs l2 radius",
             {recall}, empirical ? "l2 radius, or attack eps (pixels in [0,1])" : "l2 radius (pixels in [0,1])", notes));

  // A panel per point (the first 4; the tables have every point).
  constexpr std::size_t kPanels = 4;
  std::vector<Panel> at_k, by_certificate;
  for (const auto& s : series) {
    if (at_k.size() < kPanels && !s.recall_at.empty()) {
      Panel p{s.label, {certified_curve("K = 1", s.radius, x_max)}};
      for (const auto& [k, radius] : s.recall_at) p.curves.push_back(certified_curve(fmt::format("K = {}", k), radius, x_max));
      at_k.push_back(std::move(p));
    }
    if (by_certificate.size() < kPanels && !s.by_certificate.empty()) {
      Panel p{s.label, {}};
      for (const auto& [name, radius] : s.by_certificate) p.curves.push_back(certified_curve(name, radius, x_max));
      p.curves.push_back(certified_curve("chosen (max)", s.radius, x_max));
      by_certificate.push_back(std::move(p));
    }
  }
  if (series.size() > kPanels)
    notes.push_back(fmt::format("the Recall@K and per-certificate plots show the first {} of {} points; the tables show all",
                                kPanels, series.size()));
  if (!at_k.empty())
    drawn("recall_at_k", draw(gnuplot, out, "recall_at_k", "Certified Recall@K vs l2 radius", at_k, "l2 radius (pixels in [0,1])", notes));
  if (!by_certificate.empty())
    drawn("certificates", draw(gnuplot, out, "certificates", "Certified Recall@1 of each certificate vs l2 radius", by_certificate,
                               "l2 radius (pixels in [0,1])", notes));
  return files;
}

}  // namespace rguard::report
