// Running a helper program (gnuplot) without a shell (internal to rguard_core): its
// arguments and working folder reach it as they are, so no file or run name is ever parsed
// as a command.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace rguard {

struct ProgramRun {
  int error = 0;    // errno when it could not be started (not found, folder missing, log not writable)
  int status = -1;  // its exit status; -1 when it was ended by a signal or never started
};

// The program of that name on PATH, as an absolute path, or an empty path.
std::filesystem::path find_program(const std::string& name);

// Runs `program` with `args` in the folder `cwd`, stdin from /dev/null, stdout and stderr to
// the file `log_name` in `cwd` (created or truncated); waits for it.
ProgramRun run_program(const std::filesystem::path& program, const std::vector<std::string>& args,
                       const std::filesystem::path& cwd, const std::string& log_name);

}  // namespace rguard
