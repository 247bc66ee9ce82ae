// qwenvl-cli --plan run as a user runs it: the device map from a directory that holds nothing but
// config.json and preprocessor_config.json (no weights, no tokenizer, no GPU), its exit codes,
// --devices outside --plan, a layer split given by hand (--layers) and the plan as JSON.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
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

// --layers prices a split given by hand (here transformers' device_map="auto" for the 7B on two 24 GiB
// cards): the map says it is given and whether it fits; over a budget the plan is still printed, the
// exit code is 2 and stderr says by how much.
TEST_F(Plan, PricesAGivenSplit) {
  const std::string model = dir("Qwen2.5-VL-7B-Instruct");
  const auto fits = run_cli({"--model", model, "--devices", "cuda:0=23GiB,cuda:1=23GiB", "--layers", "0-10,11-27",
                             "--max-pixels", "1003520", "--plan"});
  ASSERT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_EQ(fits.err, "");
  for (const char* part : {"the pipeline given (a layer split, priced, not searched)",
                           "cuda:0  h100     vision tower + embeddings + layers 0-10", "layers 11-27 + LM head",
                           "the split given fits every device's budget"})
    EXPECT_NE(fits.out.find(part), std::string::npos) << part << "\n" << fits.out;

  const auto moved = run_cli({"--model", model, "--devices", "cuda:0=23GiB,cuda:1=23GiB", "--layers", "0-10,11-27",
                              "--vision-on", "1", "--max-pixels", "1003520", "--plan"});
  ASSERT_EQ(moved.exit_code, 0) << moved.err;
  EXPECT_NE(moved.out.find("vision tower + layers 11-27 + LM head"), std::string::npos) << moved.out;

  const auto over = run_cli({"--model", model, "--devices", "cuda:0=8GiB,cuda:1=23GiB", "--layers", "0-20,21-27",
                             "--max-pixels", "1003520", "--plan"});
  EXPECT_EQ(over.exit_code, 2) << over.err;
  EXPECT_NE(over.out.find("the split given does not fit: cuda:0 needs"), std::string::npos) << over.out;
  EXPECT_EQ(std::count(over.err.begin(), over.err.end(), '\n'), 1) << over.err;
  EXPECT_NE(over.err.find("qwenvl-cli: the split given does not fit: cuda:0 is "), std::string::npos) << over.err;
  EXPECT_NE(over.err.find(" GiB over its budget"), std::string::npos) << over.err;
  EXPECT_EQ(over.err.find("cuda:1"), std::string::npos) << over.err;
}

// --json: the plan's exact bytes for scripts (scripts/placement/compare.py), with the request as resolved.
TEST_F(Plan, JsonHasTheExactBytes) {
  const auto run = run_cli({"--model", dir("Qwen2.5-VL-7B-Instruct"), "--devices", "cuda:0=8GiB,cuda:1=23GiB",
                            "--layers", "0-20,21-27", "--max-batch", "4", "--max-context", "1388", "--max-pixels",
                            "937664", "--images-per-step", "4", "--prefill-chunk", "5040", "--plan", "--json"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  const nlohmann::json plan = nlohmann::json::parse(run.out);
  EXPECT_TRUE(plan.at("given").get<bool>());
  EXPECT_FALSE(plan.at("fits").get<bool>());
  EXPECT_EQ(plan.at("mode"), "pipeline");
  EXPECT_EQ(plan.at("request").at("images_per_step"), 4);
  EXPECT_EQ(plan.at("request").at("prefill_chunk_tokens"), 5040);
  EXPECT_EQ(plan.at("request").at("max_pixels"), 937664);
  const nlohmann::json& first = plan.at("devices").at(0);
  EXPECT_EQ(first.at("end_layer"), 21);
  EXPECT_TRUE(first.at("vision_tower").get<bool>());
  const nlohmann::json& m = first.at("memory");
  EXPECT_EQ(m.at("total").get<int64_t>(), m.at("weights").get<int64_t>() + m.at("kv_cache").get<int64_t>() +
                                              m.at("activations").get<int64_t>() + m.at("workspace").get<int64_t>() +
                                              m.at("margin").get<int64_t>());
  EXPECT_EQ(first.at("over_budget_bytes").get<int64_t>(),
            m.at("total").get<int64_t>() - first.at("budget_bytes").get<int64_t>());
  EXPECT_EQ(plan.at("devices").at(1).at("over_budget_bytes"), 0);
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
      {{"--devices", "cpu=1MiB", "--prompt", "hi"}, 2, "cannot load the model: Qwen2.5-VL-7B-Instruct (28 decoder layers, float32) does not fit on cpu=1MiB"},
      {{}, 1, "--prompt is required (unless --plan)"},
      {{"--devices", "cuda:0,cuda:1", "--layers", "0-10,12-27", "--plan"},
       1,
       "--layers / --vision-on: layer split: layer 11 is on no device"},
      {{"--devices", "cuda:0,cuda:1", "--layers", "0-10,11-27", "--vision-on", "2", "--plan"},
       1,
       "layer split: the vision tower on device 2 of a list of 2"},
      {{"--layers", "0-10,x", "--plan"}, 1, "--layers / --vision-on: layer split '0-10,x': item 2 'x'"},
      {{"--vision-on", "1", "--plan"}, 1, "--vision-on goes with --layers"},
      {{"--layers", "0-27", "--prompt", "hi"}, 1, "--layers is for --plan"},
      {{"--images-per-step", "2", "--prompt", "hi"}, 1, "--images-per-step is for --plan"},
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
