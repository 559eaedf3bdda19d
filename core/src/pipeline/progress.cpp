#include "pipeline/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace rguard {

std::string human_count(double v) {
  if (v >= 1e9) return fmt::format("{:.1f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string human_seconds(double s) {
  if (!std::isfinite(s)) return "?";
  if (s < 60) return fmt::format("{:.0f} s", s);
  if (s < 3600) return fmt::format("{} min {} s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return fmt::format("{} h {} min", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
}

Progress::Progress(std::ostream& out, std::string label, std::string unit, std::int64_t total, bool enabled)
    : out_(out), label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled),
      terminal_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()), last_(start_) {}

std::string Progress::line(std::int64_t done, const std::string& extra) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  return fmt::format("[{}] {}/{} {}  {} {}/s  ETA {}{}", label_, human_count(static_cast<double>(done)),
                     human_count(static_cast<double>(total_)), unit_, human_count(rate), unit_, human_seconds(eta),
                     extra.empty() ? "" : "  " + extra);
}

void Progress::update(std::int64_t done, const std::string& extra) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (terminal_ ? 0.2 : 10.0)) return;
  last_ = now;
  out_ << (terminal_ ? "\r\033[K" : "") << line(done, extra) << (terminal_ ? "" : "\n") << std::flush;
}

void Progress::finish(const std::string& extra) {
  if (!enabled_) return;
  if (terminal_) out_ << "\r\033[K" << std::flush;
  (void)extra;
}

}  // namespace rguard
