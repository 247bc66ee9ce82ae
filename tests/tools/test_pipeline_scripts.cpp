// pipelines/ask.py, pipelines/region-captions.sh and pipelines/alert.sh run end to end as a user
// runs them, with the plugin of the build tree and the tiny-a fixture model.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "program_run.h"
#include "test_util.h"

namespace {

using nlohmann::json;
using qwenvl::test::env_path;
using qwenvl::test::run_shell;
using qwenvl::test::shell_quote;

std::string model_dir() { return (qwenvl::test::fixtures_dir() / "models" / "tiny-a").string(); }

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    json j;
    EXPECT_NO_THROW(j = json::parse(line)) << "not JSON: " << line;
    if (j.is_object()) lines.push_back(j);
  }
  return lines;
}

TEST(PipelineScripts, AskAnswersEachQuestionWithItsRequestId) {
  // 4 s of live video, a question per second: the questions of seconds 1..3 reach a frame.
  // The system's python3, which has PyGObject (python3-gi), whatever python3 comes first on PATH.
  const std::string command = "SECONDS_TO_RUN=4 BUILD=" + shell_quote(env_path("QWENVL_BUILD_ROOT")) + " " +
                              shell_quote(env_path("QWENVL_SYSTEM_PYTHON")) + " " +
                              shell_quote(env_path("QWENVL_PIPELINES") + "/ask.py") + " " + shell_quote(model_dir());
  const auto run = run_shell(command);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<json> answers = json_lines(run.out);
  ASSERT_GE(answers.size(), 2u) << run.out << run.err;
  const std::set<std::string> questions = {"What is the main colour?", "Is anything moving?", "How many shapes are there?"};
  std::set<uint64_t> ids;
  uint64_t last_pts = 0;
  for (const json& a : answers) {
    EXPECT_TRUE(questions.count(a["question"].get<std::string>())) << a;
    EXPECT_TRUE(a["answer"].is_string()) << a;
    EXPECT_GE(a["pts"].get<uint64_t>(), last_pts) << "answers in frame order";
    last_pts = a["pts"].get<uint64_t>();
    ids.insert(a["request_id"].get<uint64_t>());
  }
  EXPECT_EQ(ids.size(), answers.size()) << "each question has its own id";
  EXPECT_NE(run.err.find("questions answered"), std::string::npos) << run.err;
}

TEST(PipelineScripts, RegionCaptionsAnswerEveryBoxOfEveryAskedFrame) {
  // 10 frames 100 ms apart, asked every 500 ms (frames at 0 and 500 ms), two boxes each.
  const std::string command = "FRAMES=10 INTERVAL_NS=500000000 BUILD=" + shell_quote(env_path("QWENVL_BUILD_ROOT")) + " " +
                              shell_quote(env_path("QWENVL_PIPELINES") + "/region-captions.sh") + " " + shell_quote(model_dir());
  const auto run = run_shell(command);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<json> answers = json_lines(run.out);
  ASSERT_EQ(answers.size(), 4u) << run.out;
  std::map<uint64_t, std::set<int>> boxes_by_pts;
  std::set<uint64_t> ids;
  for (const json& a : answers) {
    ASSERT_TRUE(a.contains("roi_id") && a.contains("roi_type") && a.contains("roi_box")) << a;
    const int roi = a["roi_id"].get<int>();
    boxes_by_pts[a["pts"].get<uint64_t>()].insert(roi);
    ids.insert(a["request_id"].get<uint64_t>());
    if (roi == 0) {
      EXPECT_EQ(a["roi_type"], "ball");
      EXPECT_EQ(a["roi_box"], json({8, 8, 40, 40}));
      EXPECT_EQ(a["prompt"], "What is in this ball region?");
    } else {
      EXPECT_EQ(roi, 1);
      EXPECT_EQ(a["roi_type"], "background");
      EXPECT_EQ(a["roi_box"], json({60, 20, 64, 48}));
    }
  }
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(boxes_by_pts, (std::map<uint64_t, std::set<int>>{{0, {0, 1}}, {500000000, {0, 1}}}));
}

// alert.sh with ALERT_WHEN given: every answer carries alert, true when the condition holds.
std::vector<json> alert_answers(const std::string& alert_when) {
  // 10 frames 100 ms apart, asked every 500 ms: frames at 0 and 500 ms.
  const std::string command = "FRAMES=10 INTERVAL_NS=500000000 ALERT_WHEN=" + shell_quote(alert_when) +
                              " BUILD=" + shell_quote(env_path("QWENVL_BUILD_ROOT")) + " " +
                              shell_quote(env_path("QWENVL_PIPELINES") + "/alert.sh") + " " + shell_quote(model_dir());
  const auto run = run_shell(command);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  const std::vector<json> answers = json_lines(run.out);
  EXPECT_EQ(answers.size(), 2u) << run.out << run.err;
  for (const json& a : answers) EXPECT_TRUE(a.contains("alert") && a["alert"].is_boolean()) << a;
  return answers;
}

TEST(PipelineScripts, AlertMarksTheAnswersThatMeetTheCondition) {
  // Matches every answer at its start, and only if the backslashes and the quote reach PCRE2 as
  // written (without them the pattern does not compile and the element does not start).
  for (const json& a : alert_answers(R"p(regex:\A|\)|")p")) EXPECT_EQ(a["alert"], true) << a;
  // The tiny model writes no JSON: a field condition never holds.
  for (const json& a : alert_answers("field:people>=1")) EXPECT_EQ(a["alert"], false) << a;
}

}  // namespace
