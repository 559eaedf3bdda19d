// One attack's outcome at one eps in an HDF5 group: the stage cache and certificates.h5
// use the same layout (docs/attacks.md).
#pragma once

#include <string>

#include "io/h5io.hpp"
#include "rguard/metric.hpp"

namespace rguard {

void write_attack_outcome(H5File& file, const std::string& group, const AttackOutcome& outcome);
// Reads back what write_attack_outcome wrote; images only when asked for.
AttackOutcome read_attack_outcome(const H5File& file, const std::string& group, bool images);

}  // namespace rguard
