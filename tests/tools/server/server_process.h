// qwenvl-server started as a user starts it, for the tests: its own process on a free loopback port
// (--port 0, or the port given: a server restarted where it was; the port is read from the line it
// prints once serving), stderr kept in a file for the
// failure messages, SIGTERM and its exit code.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "program_run.h"
#include "test_util.h"

namespace qwenvl::test {

class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args, int port = 0) {
    static int started = 0;
    err_file_ = std::filesystem::temp_directory_path() /
                ("qwenvl_server_test_" + std::to_string(::getpid()) + "_" + std::to_string(++started) + ".err");
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    const std::string program = env_path("QWENVL_SERVER");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      std::FILE* err = std::fopen(err_file_.c_str(), "w");
      if (err != nullptr) ::dup2(::fileno(err), STDERR_FILENO);
      ::close(out[0]);
      std::vector<std::string> all = {program, "--port", std::to_string(port)};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(program.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    stdout_ = ::fdopen(out[0], "r");
    // "qwenvl-server: serving NAME on http://127.0.0.1:PORT" once the model is loaded.
    char line[512];
    if (std::fgets(line, sizeof line, stdout_) == nullptr)
      throw std::runtime_error("qwenvl-server ended before serving: " + errors());
    first_line_ = line;
    const size_t colon = first_line_.rfind(':');
    port_ = std::stoi(first_line_.substr(colon + 1));
  }
  ~ServerProcess() {
    if (pid_ > 0 && exit_code_ < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_ != nullptr) std::fclose(stdout_);
    std::error_code ec;
    std::filesystem::remove(err_file_, ec);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  const std::string& first_line() const { return first_line_; }
  std::string errors() const {
    try {
      return read_text(err_file_);
    } catch (const std::exception&) {
      return "";
    }
  }

  void signal(int sig) const { ::kill(pid_, sig); }
  // The exit code (128 + the signal for a crash), or -1 when it is still running after `timeout`.
  int wait_exit(std::chrono::seconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (exit_code_ < 0 && std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_)
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  std::FILE* stdout_ = nullptr;
  std::filesystem::path err_file_;
  std::string first_line_;
  int port_ = 0;
  int exit_code_ = -1;
};

}  // namespace qwenvl::test
