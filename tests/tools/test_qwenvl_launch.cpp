// qwenvl-launch run as a user runs it (the built binary, QWENVL_LAUNCH) with the plugin of the build
// tree (GST_PLUGIN_PATH) and the tiny-a fixture model: its stdout must be JSON lines only, one per
// answer the pipeline asked for; faults must give one stderr line and a non-zero exit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "program_run.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kFrameNs = 100000000;  // framerate=10/1 in the pipelines below

using LaunchRun = qwenvl::test::ProgramRun;
using qwenvl::test::env_path;
using qwenvl::test::run_shell;
using qwenvl::test::shell_quote;

std::string model_dir() { return (qwenvl::test::fixtures_dir() / "models" / "tiny-a").string(); }

LaunchRun launch(const std::string& pipeline) { return run_shell(shell_quote(env_path("QWENVL_LAUNCH")) + " " + shell_quote(pipeline)); }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every stdout line is one answer object with all the fields, of the right types and consistent.
std::vector<json> parse_answers(const std::string& out) {
  std::vector<json> answers;
  for (const auto& line : lines_of(out)) {
    json j;
    EXPECT_NO_THROW(j = json::parse(line)) << "not JSON: " << line;
    if (!j.is_object()) continue;
    for (const char* key : {"text", "prompt", "stream_id", "finish_reason", "element"})
      EXPECT_TRUE(j.contains(key) && j[key].is_string()) << key << " in " << line;
    for (const char* key : {"request_id", "pts", "latency", "ttft", "prompt_tokens", "generated_tokens"})
      EXPECT_TRUE(j.contains(key) && j[key].is_number_integer()) << key << " in " << line;
    EXPECT_TRUE(j.contains("token_ids") && j["token_ids"].is_array()) << line;
    EXPECT_TRUE(j.contains("alert") && j["alert"].is_boolean()) << line;
    // A string exactly when a stop string ended the answer, null otherwise.
    EXPECT_TRUE(j.contains("stop_string") && (j["finish_reason"] == "stop_string" ? j["stop_string"].is_string()
                                                                                   : j["stop_string"].is_null()))
        << line;
    if (j.value("token_ids", json::array()).is_array() && j["generated_tokens"].is_number_integer()) {
      EXPECT_EQ(j["token_ids"].size(), j["generated_tokens"].get<size_t>()) << line;
      for (const auto& id : j["token_ids"]) EXPECT_TRUE(id.is_number_integer() && id.get<int64_t>() >= 0) << line;
    }
    if (j["latency"].is_number_integer() && j["ttft"].is_number_integer()) {
      EXPECT_GT(j["ttft"].get<uint64_t>(), 0u) << line;
      EXPECT_GE(j["latency"].get<uint64_t>(), j["ttft"].get<uint64_t>()) << line;
    }
    answers.push_back(j);
  }
  return answers;
}

TEST(QwenvlLaunch, PrintsOneJsonLinePerAskedFrame) {
  // 10 frames 100 ms apart, one asked per 300 ms: pts 0, 300, 600 and 900 ms. mode=sync so that no
  // due frame is skipped while the engine is busy.
  const std::string pipeline = "videotestsrc num-buffers=10 ! video/x-raw,width=64,height=64,framerate=10/1 ! qwenvl model=" +
                               model_dir() + " stream-id=front mode=sync interval=300000000 max-new-tokens=4 "
                               "prompt=\"What is shown?\" ! fakesink";
  const LaunchRun run = launch(pipeline);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<json> answers = parse_answers(run.out);
  ASSERT_EQ(answers.size(), 4u) << run.out;
  std::set<uint64_t> request_ids;
  for (size_t i = 0; i < answers.size(); ++i) {
    const json& a = answers[i];
    EXPECT_EQ(a["pts"].get<uint64_t>(), 3 * i * kFrameNs);
    EXPECT_EQ(a["stream_id"], "front");
    EXPECT_EQ(a["prompt"], "What is shown?");
    EXPECT_EQ(a["element"], "qwenvl0");
    EXPECT_GE(a["generated_tokens"].get<int>(), 1);
    EXPECT_LE(a["generated_tokens"].get<int>(), 4);
    EXPECT_GT(a["prompt_tokens"].get<int>(), 4);  // the chat template, the image pads and the prompt
    request_ids.insert(a["request_id"].get<uint64_t>());
  }
  EXPECT_EQ(request_ids.size(), answers.size()) << "request ids repeat";
}

TEST(QwenvlLaunch, SyntaxErrorGivesOneStderrLineAndNonZeroExit) {
  const LaunchRun run = launch("videotestsrc ! ! fakesink");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(run.out, "");
  const auto err = lines_of(run.err);
  ASSERT_EQ(err.size(), 1u) << run.err;
  EXPECT_NE(err[0].find("parse error"), std::string::npos) << err[0];
}

TEST(QwenvlLaunch, MissingElementIsNamed) {
  const LaunchRun run = launch("videotestsrc num-buffers=1 ! nosuchelement ! fakesink");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(run.out, "");
  const auto err = lines_of(run.err);
  ASSERT_EQ(err.size(), 1u) << run.err;
  EXPECT_NE(err[0].find("nosuchelement"), std::string::npos) << err[0];
}

TEST(QwenvlLaunch, ElementErrorGivesOneStderrLineAndNonZeroExit) {
  const fs::path missing = fs::temp_directory_path() / "qwenvl-launch-test-no-such-model";
  const LaunchRun run = launch("videotestsrc num-buffers=3 ! qwenvl model=" + missing.string() + " ! fakesink");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(run.out, "");
  const auto err = lines_of(run.err);
  ASSERT_EQ(err.size(), 1u) << run.err;
  EXPECT_NE(err[0].find(missing.string()), std::string::npos) << err[0];
}

// A 1x300 stream: the model refuses every frame (aspect ratio). Each failure is a stderr line
// with its reason, and a run with nothing but failures exits non-zero (issue 15: it printed
// nothing and exited 0).
TEST(QwenvlLaunch, EveryRequestFailedIsReportedAndNonZeroExit) {
  const LaunchRun run = launch("videotestsrc num-buffers=3 ! video/x-raw,width=1,height=300,framerate=10/1 ! qwenvl model=" +
                               model_dir() + " mode=sync max-new-tokens=2 ! fakesink");
  EXPECT_NE(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "");
  const auto err = lines_of(run.err);
  ASSERT_EQ(err.size(), 4u) << run.err;  // the warnings of three failed requests, then the verdict
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(err[i].find("warning from qwenvl0"), std::string::npos) << err[i];
    EXPECT_NE(err[i].find("aspect ratio 300"), std::string::npos) << err[i];
  }
  EXPECT_NE(err[3].find("every request failed (3"), std::string::npos) << err[3];
}

TEST(QwenvlLaunch, SigintSendsEosAndDrains) {
  // A live source that never ends by itself: only the SIGINT -> EOS path can end the run cleanly.
  const std::string pipeline = "videotestsrc is-live=true ! video/x-raw,width=64,height=64,framerate=10/1 ! qwenvl model=" +
                               model_dir() + " interval=200000000 max-new-tokens=2 ! fakesink";
  int out_pipe[2];
  ASSERT_EQ(::pipe(out_pipe), 0);
  const std::string launcher = env_path("QWENVL_LAUNCH");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    ::execl(launcher.c_str(), launcher.c_str(), pipeline.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  FILE* out = ::fdopen(out_pipe[0], "r");
  ASSERT_NE(out, nullptr);
  std::string text;
  char line[65536];
  // Wait for the first answer (the model is loaded and the pipeline plays), then interrupt.
  if (std::fgets(line, sizeof line, out) != nullptr) text += line;
  ::kill(pid, SIGINT);
  while (std::fgets(line, sizeof line, out) != nullptr) text += line;
  std::fclose(out);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_GE(parse_answers(text).size(), 1u) << text;
}

TEST(QwenvlLaunch, MultiStreamScriptAnswersEveryStream) {
  // pipelines/multi-stream.sh: 4 streams of 10 frames 100 ms apart, one asked per 500 ms: 2 each.
  const std::string script = env_path("QWENVL_PIPELINES") + "/multi-stream.sh";
  const std::string command = "FRAMES=10 INTERVAL_NS=500000000 BUILD=" + shell_quote(env_path("QWENVL_BUILD_ROOT")) +
                              " " + shell_quote(script) + " " + shell_quote(model_dir());
  const LaunchRun run = run_shell(command);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<json> answers = parse_answers(run.out);
  ASSERT_EQ(answers.size(), 8u) << run.out;
  std::map<std::string, std::vector<uint64_t>> pts_by_stream;
  std::set<uint64_t> request_ids;
  for (const json& a : answers) {
    pts_by_stream[a["stream_id"].get<std::string>()].push_back(a["pts"].get<uint64_t>());
    request_ids.insert(a["request_id"].get<uint64_t>());
  }
  EXPECT_EQ(request_ids.size(), answers.size()) << "request ids repeat";
  ASSERT_EQ(pts_by_stream.size(), 4u);
  for (const char* stream : {"cam0", "cam1", "cam2", "cam3"})
    EXPECT_EQ(pts_by_stream[stream], (std::vector<uint64_t>{0, 5 * kFrameNs})) << stream;
}

}  // namespace
