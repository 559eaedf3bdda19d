#include "shell.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <stdexcept>

ShellOutput shell(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
  ShellOutput out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command_line);
  char buffer[4096];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.text.append(buffer, got);
  const int status = ::pclose(pipe);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}
