// Include first in every test file. Debian's LibTorch pulls in glog, whose CHECK macros
// would silently replace doctest's (toolchain.md pitfall 1): include torch's headers
// first, drop glog's macros, then include doctest.
#pragma once

#include <torch/types.h>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#undef CHECK_NOTNULL

#include <doctest/doctest.h>
