// The retrievalguard certifier's parameters: names, defaults, ranges and what each means
// (docs/yaml-reference.md is generated from them).
#pragma once

#include <vector>

#include "rguard/params.hpp"

namespace rguard::retrievalguard {

std::vector<ParamSpec> schema();

}  // namespace rguard::retrievalguard
