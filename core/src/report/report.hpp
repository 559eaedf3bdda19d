// `rguard report RUN...`: tables (Markdown, CSV, LaTeX) and plots (gnuplot, PNG and SVG)
// of certified Recall@1 against the radius, from the files of one or more run folders.
#pragma once

#include <string>
#include <vector>

namespace rguard {

struct ReportOptions {
  std::vector<std::string> runs;  // run folders (results/<name>)
  std::string out;                // default <first run>/report
  std::vector<double> radii;      // table radii; default those of the runs' certified_recall metrics
};

struct ReportResult {
  std::string out_dir;
  std::vector<std::string> files;
  std::vector<std::string> notes;  // saturation, missing gnuplot
  bool plotted = false;
};

ReportResult write_report(const ReportOptions& options);

}  // namespace rguard
