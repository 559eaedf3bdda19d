// Errors that reach the user. Every message says where (file:line:column or key),
// what was expected and what to do; the CLI prints what() and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace rguard {

// A user-facing error: bad input, a refused plugin, a missing data file.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a value came from in a YAML file (1-based line and column; 0 when unknown).
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;  // "file:line:col" (or "file", or "<command line>")
};

}  // namespace rguard
