// Runs a command line through /bin/sh for the tests that drive the real binary.
#pragma once

#include <string>

struct ShellOutput {
  int status = -1;   // exit status; -1 when ended by a signal
  std::string text;  // stdout and stderr together
};

// `command_line 2>&1`, its output read to the end.
ShellOutput shell(const std::string& command_line);
