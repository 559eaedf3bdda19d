#include "rguard/error.hpp"

#include <c10/util/Exception.h>

#include <exception>
#include <new>

namespace rguard {

Error::~Error() = default;
AttributedError::~AttributedError() = default;

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
