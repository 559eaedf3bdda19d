#include "rguard/error.hpp"

namespace rguard {

// Out of line: one home for the vtables and typeinfo, so an Error thrown by a plugin and
// caught by the core is the same type on both sides of the library boundary.
Error::~Error() = default;
AttributedError::~AttributedError() = default;

}  // namespace rguard
