// Errors that reach the user. Every message says where (file:line:column or key),
// what was expected and what to do; the CLI prints what() and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace rguard {

// A user-facing error: bad input, a refused plugin, a missing data file. Its destructor is
// defined in the core, so its vtable and type information live in librguard_core even when
// a plugin throws it: what() stays callable after that plugin's library is unloaded.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~Error() override;
};

// An error whose message already says who failed: an exception converted at the plugin
// boundary by with_context ("<where>: <plugin> failed <doing>: <message>"), or the core's
// own error raised inside such a boundary (outside_plugin). Boundaries pass it on as it
// is. Nothing of a plugin's exception survives the conversion (its type, vtable and
// storage may belong to the plugin's library), so it can be reported after the library
// is gone.
class AttributedError : public Error {
 public:
  using Error::Error;
  ~AttributedError() override;
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

// The plugin boundary: runs fn, a call into plugin code. Any exception escaping it (the
// plugin's rguard::Error, a std::exception, LibTorch's c10::Error, anything thrown) is
// converted here, while the plugin's library is certainly loaded, into a core-owned
// AttributedError "<context()>: <message>", so it reaches the user once, saying where in
// the spec, which plugin and doing what.
template <class Context, class Fn>
decltype(auto) with_context(Context&& context, Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const AttributedError&) {
    throw;
  } catch (...) {
    throw AttributedError(std::string(context()) + ": " + current_exception_message());
  }
}

// The core's own work called back from inside a plugin boundary (a checkpoint written
// while training): its rguard::Error is not the plugin's, so it crosses the boundary
// without being attributed to the plugin.
template <class Fn>
decltype(auto) outside_plugin(Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const AttributedError&) {
    throw;
  } catch (const Error& e) {
    throw AttributedError(e.what());
  }
}

}  // namespace rguard
