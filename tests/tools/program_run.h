// Runs a program as a user would from a shell, for the tests of tools/: stdout through a pipe,
// stderr through a file, the exit code (a crash shows as 128 + its signal).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "test_util.h"

namespace qwenvl::test {

struct ProgramRun {
  int exit_code = -1;
  std::string out, err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A path meson passes in the environment (the built program under test).
inline std::string env_path(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || !std::filesystem::exists(v))
    throw std::runtime_error(std::string(name) + " is unset or missing: run through meson test");
  return v;
}

inline ProgramRun run_shell(const std::string& command_line) {
  const std::filesystem::path err_file =
      std::filesystem::temp_directory_path() / ("qwenvl_tool_test_" + std::to_string(::getpid()) + ".err");
  const std::string command = command_line + " 2>" + shell_quote(err_file.string());
  ProgramRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.err = read_text(err_file);
  std::filesystem::remove(err_file);
  return run;
}

}  // namespace qwenvl::test
