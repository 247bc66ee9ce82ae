// qwenvl-cli --plan run as a user runs it: the device map from a directory that holds nothing but
// config.json and preprocessor_config.json (no weights, no tokenizer, no GPU), its exit codes, and
// --devices outside --plan.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "program_run.h"
#include "runtime/placement/published_shapes.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

qwenvl::test::ProgramRun run_cli(const std::vector<std::string>& args) {
  std::string command = qwenvl::test::shell_quote(qwenvl::test::env_path("QWENVL_CLI"));
  for (const auto& a : args) command += " " + qwenvl::test::shell_quote(a);
  return qwenvl::test::run_shell(command);
}

class Plan : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = fs::temp_directory_path() / ("qwenvl_cli_plan_" + std::to_string(::getpid()));
    // The fixture model's two configuration files alone.
    const fs::path tiny = qwenvl::test::fixtures_dir() / "models" / "tiny-a";
    fs::create_directories(tmp_ / "tiny-a-config-only");
    for (const char* file : {"config.json", "preprocessor_config.json"})
      fs::copy_file(tiny / file, tmp_ / "tiny-a-config-only" / file);
    qwenvl::test::write_model_dir(qwenvl::test::kQwen7B, tmp_);
  }
  static void TearDownTestSuite() { fs::remove_all(tmp_); }
  static std::string dir(const std::string& name) { return (tmp_ / name).string(); }
  static fs::path tmp_;
};
fs::path Plan::tmp_;

TEST_F(Plan, NeedsNoWeightsAndNoPrompt) {
  const auto run = run_cli(
      {"--model", dir("tiny-a-config-only"), "--devices", "cpu=4GiB,cpu=4GiB", "--placement", "pipeline", "--plan"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  for (const char* part : {"tiny-a-config-only", "cpu", "layers", "vision tower", "LM head", "predicted"})
    EXPECT_NE(run.out.find(part), std::string::npos) << part << "\n" << run.out;
}

TEST_F(Plan, CudaWithoutAGpuTakesTheProfilesMemory) {
  const auto run = run_cli({"--model", dir("Qwen2.5-VL-7B-Instruct"), "--devices", "cuda:0,cuda:1@h200", "--placement",
                            "pipeline", "--max-batch", "8", "--max-pixels", "1003520", "--plan"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("the h100 profile's 79.6 GiB (no GPU is queried while planning)"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("the h200 profile's"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("max batch 8"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("images of up to 1003520 pixels"), std::string::npos) << run.out;
}

TEST_F(Plan, TheDeviceOptionAlonePlansOneDevice) {
  const auto run = run_cli({"--model", dir("Qwen2.5-VL-7B-Instruct"), "--device", "cuda:1", "--plan"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("cuda:1"), std::string::npos) << run.out;
}

struct Failure {
  std::vector<std::string> args;  // after --model; "{7b}" is the 7B directory
  int exit_code;
  std::string says;
};

TEST_F(Plan, FailsWithOneLine) {
  const std::vector<Failure> cases = {
      {{"--devices", "cuda:0=4GiB", "--plan"}, 2, "cannot place the model: "},
      {{"--devices", "cuda:0=18GiB", "--max-pixels", "1003520", "--plan"}, 2, "it would fit with a max context of"},
      {{"--devices", "gpu:0", "--plan"}, 1, "--devices / --placement: device list 'gpu:0': entry 1"},
      {{"--devices", "cuda:0=22", "--plan"}, 1, "needs a unit"},
      {{"--placement", "spread", "--plan"}, 1, "unknown placement 'spread'"},
      {{"--max-batch", "0", "--plan"}, 1, "--max-batch must be at least 1"},
      {{"--max-batch", "4", "--prompt", "hi"}, 1, "--max-batch is for --plan"},
      {{"--devices", "cpu,cpu", "--prompt", "hi"}, 1, "a list of several is planned with --plan"},
      {{"--devices", "cpu=4GiB", "--prompt", "hi"}, 1, "caps are planned (--plan) but not yet enforced"},
      {{}, 1, "--prompt is required (unless --plan)"},
  };
  for (const Failure& c : cases) {
    std::vector<std::string> args = {"--model", dir("Qwen2.5-VL-7B-Instruct")};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto run = run_cli(args);
    EXPECT_EQ(run.exit_code, c.exit_code) << c.says << ": " << run.err;
    EXPECT_EQ(run.out, "") << c.says;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_NE(run.err.find(c.says), std::string::npos) << run.err;
  }
}

}  // namespace
