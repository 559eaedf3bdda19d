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
#include <functional>
#include <fstream>

#include "report/report_views.hpp"
#include "rguard/error.hpp"
#include "io/spawn.hpp"

namespace rguard::report {

namespace fs = std::filesystem;

namespace {

struct Curve {
  std::string title;
  std::vector<std::pair<double, double>> points;
  bool dashed = false;  // a measured curve (empirical robustness), drawn with points
  bool scatter = false;  // one point per query, unjoined
};

// The y axis of a figure: certified fractions unless said otherwise.
struct Axis {
  std::string label = "fraction of queries";
  std::string range = "[0:1.02]";
  bool log = false;
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

// The figures' size and text, in their own pixels (SVG user units; the PNG is drawn in the
// same pixels). index.html shows an SVG across the page's content width, 1280 - 2 x 2em =
// 1216 px in a 1280 px window (report.cpp), so a 1200 px figure is shown at 1216/1200 and
// its 16 px text at 16.2 px: digits and capitals (0.73 em in DejaVu Sans) 11.8 px high.
// pngcairo takes points at 96 dpi: 12 pt is the same 16 px. tests/test_cli.cpp checks the
// scripts against this rule.
constexpr int kWidth = 1200;
constexpr int kFontPx = 16;
constexpr int kColumns = 2;  // small multiples: at most 2 panels a row, each 600 px wide

std::string terminal(bool png, int height, const std::string& stem) {
  // `reset` first: the PNG's settings (the legend panel's unset border) stay out of the SVG.
  return fmt::format("reset\nset terminal {} size {},{} font 'DejaVu Sans,{}'\nset output '{}{}'\n",
                     png ? "pngcairo" : "svg dynamic", kWidth, height, png ? kFontPx * 3 / 4 : kFontPx, stem,
                     png ? ".png" : ".svg");
}

// How curve `style` (its place in the figure's legend) is drawn, the same in every panel.
// gnuplot's colours repeat after 8 linetypes, so each further 8 curves get dash patterns of
// their own (solid 1, 3, 5, ...; dashed 2, 4, 6, ...): no two curves of a figure look alike.
std::string curve_style(std::size_t style, bool dashed, bool scatter = false) {
  if (scatter) return fmt::format("points linetype {} pointtype {} pointsize 1.2", style + 1, 6 + style);
  const std::size_t dashes = 2 * (style / 8) + (dashed ? 2 : 1);
  return dashed ? fmt::format("linespoints linetype {} dashtype {} pointtype {} linewidth 2", style + 1, dashes, 4 + style)
                : fmt::format("lines linetype {} dashtype {} linewidth 2", style + 1, dashes);
}

std::string margins(double left, double right, double bottom, double top) {
  return fmt::format("set lmargin at screen {:.4f}\nset rmargin at screen {:.4f}\nset bmargin at screen {:.4f}\n"
                     "set tmargin at screen {:.4f}\n",
                     left, right, bottom, top);
}

// One figure: one panel with its legend beside it (below it when names are long), or
// panels of the same curves in rows of kColumns with one legend below them all, each name
// drawn in one style in every panel. A legend never covers a curve.
bool draw(const fs::path& gnuplot, const fs::path& out, const std::string& stem, const std::string& title, const std::vector<Panel>& panels,
          const std::string& xlabel, std::vector<std::string>& notes, const Axis& axis = {}) {
  std::string data;
  for (const auto& panel : panels)
    for (const auto& curve : panel.curves) {
      data += "# " + one_line(panel.title + " " + curve.title) + "\n";
      for (const auto& [x, y] : curve.points) data += fmt::format("{} {}\n", x, y);
      data += "\n\n";  // gnuplot data blocks are separated by two blank lines
    }
  const std::string dat = stem + ".dat", gp = stem + ".gp", log = stem + ".log";
  write_text(out / dat, data);
  // The legend: each curve name once, in the order the panels first name it (one panel:
  // each curve, in its own style even where two runs' names are alike).
  std::vector<const Curve*> legend;
  std::vector<std::vector<std::size_t>> styles;  // per panel, per curve: its legend entry
  for (const auto& panel : panels) {
    styles.emplace_back();
    for (const auto& curve : panel.curves) {
      auto found = panels.size() == 1 ? legend.end() : std::find_if(legend.begin(), legend.end(), [&](const Curve* c) {
        return c->title == curve.title;
      });
      styles.back().push_back(static_cast<std::size_t>(found - legend.begin()));
      if (found == legend.end()) legend.push_back(&curve);
    }
  }
  std::size_t longest = 0;
  for (const Curve* curve : legend) longest = std::max(longest, curve->title.size());
  // A legend entry is its name and a 4-character line sample; 10 px a character is wider
  // than DejaVu Sans draws at 16 px, so the entries fit in the columns counted here.
  const int entry = 10 * static_cast<int>(longest + 7);
  const int per_row = std::max(1, (kWidth - 40) / entry);
  const int legend_rows = static_cast<int>((legend.size() + per_row - 1) / per_row);
  const std::string common = fmt::format(
      "set xlabel {} noenhanced\nset ylabel {} noenhanced\nset yrange {}\nset xrange [0:*]\nset grid\n{}",
      gnuplot_string(xlabel), gnuplot_string(axis.label), axis.range, axis.log ? "set logscale y\n" : "");
  auto plot = [&](std::size_t p, std::size_t& block, bool titled) {
    std::string line = "plot ";
    for (std::size_t c = 0; c < panels[p].curves.size(); ++c, ++block) {
      const Curve& curve = panels[p].curves[c];
      line += fmt::format("{}'{}' index {} with {} {}", c ? ", " : "", dat, block,
                          curve_style(styles[p][c], curve.dashed, curve.scatter),
                          titled ? "title " + gnuplot_string(curve.title) : std::string("notitle"));
    }
    return line + "\n";
  };
  std::string script;
  if (panels.size() == 1) {
    // Long names go below the plot, in as many columns as fit, so they never squeeze it.
    const bool below = longest > 28;
    const int height = 600 + (below ? 28 * legend_rows : 0);
    for (const bool png : {true, false}) {
      std::size_t block = 0;
      script += terminal(png, height, stem) +
                fmt::format("set multiplot layout 1,1 title {} noenhanced\n", gnuplot_string(title)) + common +
                fmt::format("set key {} noenhanced\n", below ? fmt::format("below maxcols {}", per_row) : "outside right top") +
                fmt::format("set title {} noenhanced\n", gnuplot_string(panels[0].title)) + plot(0, block, true) +
                "unset multiplot\nunset output\n";
    }
  } else {
    // Rows of panels, in pixels from the top: the figure's title, per row a cell of the panel
    // title, the plot, its tick labels and x label (left of it the y label and its tick
    // labels), then the legend.
    const int columns = kColumns, rows = static_cast<int>((panels.size() + columns - 1) / columns);
    const int title_h = 40, cell_h = 420, cell_w = kWidth / columns, legend_h = 28 * legend_rows + 24;
    const int height = title_h + rows * cell_h + legend_h;
    auto y = [&](int px) { return 1.0 - static_cast<double>(px) / height; };
    auto x = [&](int px) { return static_cast<double>(px) / kWidth; };
    for (const bool png : {true, false}) {
      std::size_t block = 0;
      script += terminal(png, height, stem) +
                fmt::format("set multiplot title {} noenhanced\n", gnuplot_string(title)) + common + "unset key\n";
      for (std::size_t p = 0; p < panels.size(); ++p) {
        const int row = static_cast<int>(p) / columns, column = static_cast<int>(p) % columns;
        const int top = title_h + row * cell_h, left = column * cell_w;
        script += margins(x(left + 100), x(left + cell_w - 30), y(top + cell_h - 80), y(top + 56)) +
                  fmt::format("set title {} noenhanced\n", gnuplot_string(panels[p].title)) + plot(p, block, false);
      }
      // The legend: a plot of nothing but its entries, across the foot of the figure.
      script += margins(x(20), x(kWidth - 20), y(height - 8), y(height - legend_h + 8)) +
                "unset title\nunset xlabel\nunset ylabel\nunset grid\nunset border\nunset tics\nset xrange [0:1]\n" +
                fmt::format("set key center center horizontal maxcols {} noenhanced\nplot ", per_row);
      for (std::size_t i = 0; i < legend.size(); ++i)
        script += fmt::format("{}NaN with {} title {}", i ? ", " : "", curve_style(i, legend[i]->dashed, legend[i]->scatter),
                              gnuplot_string(legend[i]->title));
      script += "\nunset multiplot\nunset output\n";
    }
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
  // Sequential sampling: where the samples went, one point per query (its certified
  // Recall@1 radius, 0 when not certified, against the main samples it drew).
  Panel samples{"", {}};
  for (const auto& s : series) {
    if (std::adjacent_find(s.samples.begin(), s.samples.end(), std::not_equal_to<>()) == s.samples.end()) continue;
    Curve c{s.label, {}, false, true};
    for (std::size_t i = 0; i < s.samples.size(); ++i) c.points.emplace_back(s.radius[i], s.samples[i]);
    samples.curves.push_back(std::move(c));
  }
  if (!samples.curves.empty())
    drawn("samples", draw(gnuplot, out, "samples", "Main samples per query vs its certified Recall@1 radius (sequential sampling)",
                          {samples}, "certified Recall@1 radius (0: not certified)", notes,
                          Axis{"main samples drawn", "[*:*]", true}));
  return files;
}

}  // namespace rguard::report
