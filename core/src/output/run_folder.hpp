// A run's output folder <output>/<name> and how a finished run replaces it. rguard replaces
// or removes only what it wrote: a finished run folder (its manifest.json lists every other
// file in it; a `report/` folder of `rguard report` files may sit beside them), and the
// staging (.<name>.partial-<host>-<pid>-*) and moved-aside (.<name>.old-<host>-<pid>)
// folders of its own runs. Internal to rguard_core.
#pragma once

#include <filesystem>
#include <string>

namespace rguard::run_folder {

// Why `dir` is not a finished rguard run that a new run may replace; "" when it is.
std::string not_replaceable(const std::filesystem::path& dir);

// Where a swap without the atomic exchange moves the previous run of process `pid` aside.
std::filesystem::path moved_aside(const std::filesystem::path& root, const std::string& name, long pid);

// A new, empty staging folder beside the run folder, this process's own (its name says whose),
// with the permissions mkdir would give it under the umask (it becomes the run folder).
std::filesystem::path make_staging(const std::filesystem::path& root, const std::string& name);

// Call with the run's lock held (<root>/.<name>.lock). What an interrupted swap left: the
// last finished run moved aside is put back if <root>/<name> is missing; moved-aside runs
// and the staging folders of dead processes on this host are removed. Folders that do not
// hold what rguard writes there are left alone, with a warning.
void recover(const std::filesystem::path& root, const std::string& name);

// Call with the run's lock held. Makes `staging` the run folder <root>/<name> in one atomic
// exchange where the file system allows it (renameat2 RENAME_EXCHANGE; otherwise two
// renames that recover() completes if interrupted), then removes the previous run. Throws
// rguard::Error, leaving the previous run in place, when that is no longer replaceable.
void swap_in(const std::filesystem::path& staging, const std::filesystem::path& root, const std::string& name);

}  // namespace rguard::run_folder
