// Progress of a long stage on stderr: count, rate and ETA. Rewrites one line on a
// terminal; elsewhere (CI logs) prints a line at most every 10 seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace rguard {

class Progress {
 public:
  Progress(std::ostream& out, std::string label, std::string unit, std::int64_t total, bool enabled = true);
  void set_total(std::int64_t total) { total_ = total; }
  void update(std::int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  std::string line(std::int64_t done, const std::string& extra) const;
  std::ostream& out_;
  std::string label_, unit_;
  std::int64_t total_;
  bool enabled_, terminal_;
  std::chrono::steady_clock::time_point start_, last_;
};

std::string human_count(double value);      // 12.3k, 4.5M
std::string human_seconds(double seconds);  // 42 s, 3 min 5 s

}  // namespace rguard
