// qwenvl-cli's exit codes and the error that ends it with one line on stderr.
#pragma once

#include <string>

namespace qwenvl::cli {

enum ExitCode { kAnswered = 0, kUsageError = 1, kModelError = 2, kRequestFailed = 3 };

// An error for the user: one line on stderr and this exit code.
struct CliError {
  int code;
  std::string message;
};

}  // namespace qwenvl::cli
