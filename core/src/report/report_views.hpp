// The tables and plots of `rguard report` (internal to rguard_core): a table is rows of
// values with the best per column marked, written as Markdown, CSV, LaTeX or HTML; plots
// are gnuplot scripts drawn to PNG and SVG.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "report/report_data.hpp"

namespace rguard::report {

struct Table {
  std::string title;
  std::vector<std::string> columns;  // the first `settings` are settings, not results
  std::size_t settings = 0;
  std::vector<std::string> labels;
  std::vector<std::vector<double>> values;  // NaN = not measured
  std::vector<std::vector<bool>> best;
};

// Per point: sigma, n, base and smoothed Recall@1, certified Recall@1 per radius, abstain
// rate, average certified radius.
Table recall_table(const std::vector<Series>& series, const std::vector<double>& radii);
// Per point and K: certified Recall@K per radius (K = 1 and those the runs kept).
Table recall_at_k_table(const std::vector<Series>& series, const std::vector<double>& radii);
// Per point and certificate (A, B, C, D, and the chosen one): certified Recall@1 per radius.
Table certificate_table(const std::vector<Series>& series, const std::vector<double>& radii);

std::string markdown(const Table& t);
std::string csv(const Table& t);
std::string latex(const Table& t);
std::string html(const Table& t);

// Draws certified_recall (Recall@1 per point, empirical curves dashed when measured),
// recall_at_k and certificates (a panel per point, two a row, one legend below them) as
// .png and .svg, 1200 px wide with 16 px text, with the program
// `gnuplot`, in the folder `out`; returns the files drawn, and says in `notes` what failed.
std::vector<std::string> draw_plots(const std::filesystem::path& gnuplot, const std::filesystem::path& out,
                                    const std::vector<Series>& series, std::vector<std::string>& notes);

}  // namespace rguard::report
