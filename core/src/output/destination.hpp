// Checks, before any work, that a run can write where its spec says: the output root and
// its run folder, the cache folder and the cache's record of runs (uses/<name>.json).
// Nothing is created; each refusal names the path, what is wrong and what to do.
#pragma once

#include "spec/spec.hpp"

namespace rguard {

// Throws rguard::Error (exit status 2) naming the first destination that cannot be used.
// `outputs`: the run writes its output folder (a --shard run only fills the cache).
void check_destinations(const ExperimentSpec& spec, bool outputs);

}  // namespace rguard
