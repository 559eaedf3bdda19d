// What any exception in flight says, for the user: LibTorch's errors without their C++
// backtrace, an allocation failure with what to lower. Apart from error.cpp because it
// needs LibTorch's headers, which the torch-free tools (tests/fuzz) do without.
#include <c10/util/Exception.h>

#include <exception>
#include <new>

#include "rguard/error.hpp"

namespace rguard {

std::string current_exception_message() {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return "out of memory (std::bad_alloc); lower certifier.batch, certify fewer queries at a time, or use a smaller model";
  } catch (const c10::Error& e) {
    return std::string("LibTorch: ") + e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception (thrown by a plugin?)";
  }
}

}  // namespace rguard
