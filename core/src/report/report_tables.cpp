#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "report/report_views.hpp"

namespace rguard::report {

namespace {

// The best value per result column: highest, lowest for the abstain rate; a column where
// all rows agree marks nothing.
void mark_best(Table& t) {
  t.best.assign(t.values.size(), std::vector<bool>(t.columns.size(), false));
  for (std::size_t c = t.settings; c < t.columns.size(); ++c) {
    const bool lower = t.columns[c] == "abstain" || t.columns[c] == "train s";
    double best = lower ? INFINITY : -INFINITY, worst = -best;
    for (const auto& row : t.values)
      if (!std::isnan(row[c])) {
        best = lower ? std::min(best, row[c]) : std::max(best, row[c]);
        worst = lower ? std::max(worst, row[c]) : std::min(worst, row[c]);
      }
    if (t.values.size() > 1 && best != worst)
      for (std::size_t i = 0; i < t.values.size(); ++i) t.best[i][c] = t.values[i][c] == best;
  }
}

// The certified fraction at each radius of the list: one table row.
std::vector<double> certified_fractions(const std::vector<double>& radius, const std::vector<double>& radii) {
  std::vector<double> row;
  for (double r : radii) row.push_back(certified_fraction(radius, r));
  return row;
}

std::vector<std::string> radius_columns(const std::vector<double>& radii, const char* what) {
  std::vector<std::string> out;
  for (double r : radii) out.push_back(fmt::format("{} r={}", what, r));
  return out;
}

std::string cell(const Table& t, std::size_t i, std::size_t c) {
  const double v = t.values[i][c];
  if (std::isnan(v)) return "–";
  if (c < t.settings) return fmt::format("{}", v);
  if (t.columns[c] == "train s") return fmt::format("{:.1f}", v);
  return t.columns[c] == "ACR" ? fmt::format("{:.4f}", v) : fmt::format("{:.3f}", v);
}

// Every character TeX gives a meaning is written as text, so that a name can never form a
// command (a folder named \immediate\write18{...} runs it under -shell-escape; ^^5c is a
// backslash too). A control character (a newline in a folder name) becomes a space.
std::string latex_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '\\': out += "\\textbackslash{}"; break;
      case '^': out += "\\textasciicircum{}"; break;
      case '~': out += "\\textasciitilde{}"; break;
      case '<': out += "\\textless{}"; break;
      case '>': out += "\\textgreater{}"; break;
      case '|': out += "\\textbar{}"; break;
      case '{': case '}': case '#': case '$': case '%': case '&': case '_':
        out += '\\';
        out += c;
        break;
      default: out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
    }
  }
  return out;
}

// A text cell of a CSV meant for spreadsheets. One that starts with = + - @ TAB or CR would
// be read as a formula (a run named =cmd|'/C calc'!A0 runs a program in some); it gets a
// leading ' and quotes (OWASP's advice). The numbers written next to it are ours and stay
// numbers. The run's own CSVs keep csv_field: the report reads them back verbatim.
std::string spreadsheet_cell(const std::string& text) {
  const bool formula = !text.empty() && text.front() != '\0' && std::strchr("=+-@\t\r", text.front()) != nullptr;
  if (!formula && text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = formula ? "\"'" : "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return out;
}

}  // namespace

Table recall_table(const std::vector<Series>& series, const std::vector<double>& radii) {
  Table t;
  t.title = "Certified Recall@1";
  t.columns = {"sigma", "n", "base R@1", "smoothed R@1"};
  t.settings = 2;
  for (const auto& c : radius_columns(radii, "R@1")) t.columns.push_back(c);
  t.columns.push_back("abstain");
  t.columns.push_back("ACR");
  const bool trained = std::any_of(series.begin(), series.end(), [](const Series& s) { return s.train_seconds.value_or(0) > 0; });
  if (trained) t.columns.push_back("train s");
  for (const auto& s : series) {
    t.labels.push_back(s.label);
    std::vector<double> row{s.sigma, static_cast<double>(s.n), s.base_recall.value_or(NAN), s.smoothed_recall};
    for (double f : certified_fractions(s.radius, radii)) row.push_back(f);
    row.push_back(s.abstain_rate);
    row.push_back(s.acr);
    if (trained) row.push_back(s.train_seconds.value_or(NAN));
    t.values.push_back(std::move(row));
  }
  mark_best(t);
  return t;
}

Table recall_at_k_table(const std::vector<Series>& series, const std::vector<double>& radii) {
  Table t;
  t.title = "Certified Recall@K";
  t.columns = radius_columns(radii, "R@K");
  for (const auto& s : series) {
    auto add = [&](std::int64_t k, const std::vector<double>& radius) {
      t.labels.push_back(fmt::format("{}, K={}", s.label, k));
      t.values.push_back(certified_fractions(radius, radii));
    };
    add(1, s.radius);
    for (const auto& [k, radius] : s.recall_at) add(k, radius);
  }
  t.best.assign(t.values.size(), std::vector<bool>(t.columns.size(), false));  // rows differ in K: nothing to mark
  return t;
}

Table certificate_table(const std::vector<Series>& series, const std::vector<double>& radii) {
  Table t;
  t.title = "Certified Recall@1 of each certificate";
  t.columns = radius_columns(radii, "R@1");
  for (const auto& s : series) {
    auto add = [&](const std::string& name, const std::vector<double>& radius) {
      t.labels.push_back(fmt::format("{}: {}", s.label, name));
      t.values.push_back(certified_fractions(radius, radii));
    };
    for (const auto& [name, radius] : s.by_certificate) add(name, radius);
    add("chosen", s.radius);
  }
  t.best.assign(t.values.size(), std::vector<bool>(t.columns.size(), false));
  return t;
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
  for (const auto& c : t.columns) out += "," + spreadsheet_cell(c);
  out += "\n";
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    out += spreadsheet_cell(t.labels[i]);
    for (std::size_t c = 0; c < t.columns.size(); ++c)
      out += "," + (std::isnan(t.values[i][c]) ? "" : fmt::format("{}", t.values[i][c]));
    out += "\n";
  }
  // The last row names, per column, the point with the best value.
  out += "best";
  for (std::size_t c = 0; c < t.columns.size(); ++c) {
    std::string names;
    for (std::size_t i = 0; i < t.labels.size(); ++i)
      if (t.best[i][c]) names += (names.empty() ? "" : "; ") + t.labels[i];
    out += "," + spreadsheet_cell(names);
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

std::string html(const Table& t) {
  // The table scrolls in its own box: the page keeps its width whatever the radii.
  std::string out = "<div class=\"scroll\"><table>\n<tr><th>point</th>";
  for (const auto& c : t.columns) out += "<th>" + html_escape(c) + "</th>";
  out += "</tr>\n";
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    out += "<tr><td>" + html_escape(t.labels[i]) + "</td>";
    for (std::size_t c = 0; c < t.columns.size(); ++c)
      out += t.best[i][c] ? "<td><b>" + cell(t, i, c) + "</b></td>" : "<td>" + cell(t, i, c) + "</td>";
    out += "</tr>\n";
  }
  return out + "</table></div>\n";
}

}  // namespace rguard::report
