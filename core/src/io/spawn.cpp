#include "io/spawn.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

extern char** environ;

namespace rguard {

namespace fs = std::filesystem;

fs::path find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    // An empty PATH entry means the current folder, as for execvp.
    const fs::path candidate = fs::path(end > start ? dirs.substr(start, end - start) : ".") / name;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return fs::absolute(candidate);  // run_program changes folder before it starts it
    start = end + 1;
  }
  return {};
}

ProgramRun run_program(const fs::path& program, const std::vector<std::string>& args, const fs::path& cwd,
                       const std::string& log_name) {
  std::vector<std::string> words{program.string()};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);

  ProgramRun run;
  posix_spawn_file_actions_t actions;
  if ((run.error = posix_spawn_file_actions_init(&actions)) != 0) return run;
  // In order, in the child: the folder first, so that the log is opened inside it.
  int failed = posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  if (!failed) failed = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!failed)
    failed = posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_name.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!failed) failed = posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid = -1;
  if (!failed) failed = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (failed) {
    run.error = failed;
    return run;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      run.error = errno;
      return run;
    }
  if (WIFEXITED(status)) run.status = WEXITSTATUS(status);
  return run;
}

}  // namespace rguard
