// Errors that reach the user. Every message says where (file:line:column or key),
// what was expected and what to do; the CLI prints what() and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

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

// The message of the exception being handled (call it inside a catch block): what() of a
// std::exception, LibTorch's message without its C++ backtrace, a hint for out-of-memory,
// and a plain statement for anything that is not a std::exception.
std::string current_exception_message();

// Runs fn. An exception other than rguard::Error escaping it (a plugin's std::exception,
// LibTorch's c10::Error, anything thrown) becomes an rguard::Error "<context()>: <message>",
// so it reaches the user once, saying which plugin failed doing what. rguard::Error passes
// unchanged: its message already says where and what to do.
template <class Context, class Fn>
decltype(auto) with_context(Context&& context, Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const Error&) {
    throw;
  } catch (...) {
    throw Error(std::string(context()) + ": " + current_exception_message());
  }
}

}  // namespace rguard
