// The files of a finished run (docs/outputs.md): resolved.yaml, manifest.json,
// summary.md, certificates.csv, certify-<point>.tsv (Cohen et al.'s layout) and
// certificates.h5. They are written into a staging folder that replaces the run folder
// only when complete, so an interrupted run never leaves outputs that look finished.
#pragma once

#include <string>

#include "pipeline/run_result.hpp"
#include "spec/spec.hpp"

namespace rguard {

std::string summary_markdown(const ExperimentSpec& spec, const RunResult& result);
std::string certificates_csv(const RunResult& result);
// Writes everything; returns the run folder.
std::string write_run_outputs(const ExperimentSpec& spec, const RunResult& result);

}  // namespace rguard
