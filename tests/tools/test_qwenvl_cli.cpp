// qwenvl-cli run as a user runs it (the built binary, QWENVL_CLI), against transformers 5.17's answers
// for the same image and video files (OUT/reference/cli, written by scripts/fixtures/sample_media.py).
// QWENVL_CLI_READS_VIDEO is 0 where the CLI was built without OpenCV (PNG images only): there the video
// cases check that --video is refused, saying why.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "program_run.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using CliRun = qwenvl::test::ProgramRun;
using qwenvl::test::shell_quote;

// Runs the CLI with these arguments.
CliRun run_cli(const std::vector<std::string>& args) {
  std::string command = shell_quote(qwenvl::test::env_path("QWENVL_CLI"));
  for (const auto& a : args) command += " " + shell_quote(a);
  return qwenvl::test::run_shell(command);
}

fs::path model_dir(const std::string& model) { return qwenvl::test::fixtures_dir() / "models" / model; }

// The case's CLI arguments, media paths made absolute (they are stored relative to the fixtures).
std::vector<std::string> case_args(const json& ref) {
  std::vector<std::string> args = {"--model", model_dir(ref["model"].get<std::string>()).string()};
  for (const auto& a : ref["args"]) {
    std::string s = a.get<std::string>();
    args.push_back(s.rfind("media/", 0) == 0 ? (qwenvl::test::fixtures_dir() / s).string() : s);
  }
  return args;
}

json load_reference(const std::string& model, const std::string& name) {
  return json::parse(
      qwenvl::test::read_text(qwenvl::test::fixtures_dir() / "reference" / "cli" / model / (name + ".json")));
}

struct CaseName {
  std::string model, name;
};
void PrintTo(const CaseName& c, std::ostream* os) { *os << c.model << "/" << c.name; }

const char* const kImageCases[] = {"one_image", "two_images_system"};
const char* const kVideoCases[] = {"video_frames", "video_default_fps"};

std::vector<CaseName> cases_of(const char* const (&names)[2]) {
  std::vector<CaseName> cases;
  for (const char* model : {"tiny-a", "tiny-b"})
    for (const char* name : names) cases.push_back({model, name});
  return cases;
}

std::vector<CaseName> all_cases() {
  std::vector<CaseName> cases = cases_of(kImageCases);
  if (QWENVL_CLI_READS_VIDEO)
    for (const CaseName& c : cases_of(kVideoCases)) cases.push_back(c);
  return cases;
}

std::string case_test_name(const CaseName& c) {
  std::string n = c.model + "_" + c.name;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

class ReferenceCase : public ::testing::TestWithParam<CaseName> {};

// stdout is transformers' decode(new_ids, skip_special_tokens=True) of its greedy answer, a newline,
// and nothing else; stderr stays empty.
TEST_P(ReferenceCase, PrintsTransformersAnswer) {
  const json ref = load_reference(GetParam().model, GetParam().name);
  const CliRun run = run_cli(case_args(ref));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, ref["text"].get<std::string>() + "\n");
  EXPECT_EQ(run.err, "");
}

// A temperature too small to sample at (1e-45 divided the logits into inf: a torch stack trace)
// is greedy, and a --max-context past the model's positions is clamped to them: transformers'
// greedy answer either way.
TEST_P(ReferenceCase, TinyTemperatureAndHugeContextGiveTheGreedyAnswer) {
  const json ref = load_reference(GetParam().model, GetParam().name);
  auto args = case_args(ref);
  const auto t = std::find(args.begin(), args.end(), "--temperature");
  ASSERT_NE(t, args.end());
  *(t + 1) = "1e-45";
  args.insert(args.end(), {"--max-context", "100000000"});
  const CliRun run = run_cli(args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, ref["text"].get<std::string>() + "\n");
  EXPECT_EQ(run.err, "");
}

// --json: the same answer with its ids, the processor's prompt length and the timings.
TEST_P(ReferenceCase, JsonCarriesIdsAndPromptLength) {
  const json ref = load_reference(GetParam().model, GetParam().name);
  auto args = case_args(ref);
  args.push_back("--json");
  const CliRun run = run_cli(args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 1) << "one JSON object, one line: " << run.out;
  const json out = json::parse(run.out);
  EXPECT_EQ(out.at("text"), ref["text"]);
  EXPECT_EQ(out.at("token_ids").get<std::vector<int>>(), ref["token_ids"].get<std::vector<int>>());
  EXPECT_EQ(out.at("prompt_tokens").get<int>(), ref["prompt_tokens"].get<int>());
  EXPECT_EQ(out.at("generated_tokens").get<size_t>(), ref["token_ids"].size());
  const double ttft = out.at("ttft_ms").get<double>(), total = out.at("total_ms").get<double>();
  EXPECT_GT(ttft, 0);
  EXPECT_GE(total, ttft);
  EXPECT_TRUE(out.at("finish_reason") == "length" || out.at("finish_reason") == "eos") << out.at("finish_reason");
  EXPECT_TRUE(out.at("stop_string").is_null()) << "no stop string ended it";
  EXPECT_EQ(run.err, "");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceCase, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return case_test_name(info.param); });

#if !QWENVL_CLI_READS_VIDEO
// Built without OpenCV: each video case fails at once, exit code 1, naming the file and saying why.
class VideoWithoutOpenCv : public ::testing::TestWithParam<CaseName> {};

TEST_P(VideoWithoutOpenCv, IsRefusedSayingWhy) {
  const json ref = load_reference(GetParam().model, GetParam().name);
  const CliRun run = run_cli(case_args(ref));
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "qwenvl-cli: video '" + (qwenvl::test::fixtures_dir() / "media" / "clip.avi").string() +
                         "': this qwenvl-cli was built without OpenCV, so only PNG images are read, no videos\n");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, VideoWithoutOpenCv, ::testing::ValuesIn(cases_of(kVideoCases)),
                         [](const auto& info) { return case_test_name(info.param); });
#endif

// --device cuda: the same ids from the GPU (fp32, so the fixture models' greedy answers hold there
// too). Skips, saying why, where the CLI reports no usable GPU.
class OnCuda : public ::testing::TestWithParam<CaseName> {};

TEST_P(OnCuda, GivesTransformersIds) {
  const json ref = load_reference(GetParam().model, GetParam().name);
  auto args = case_args(ref);
  for (const char* a : {"--device", "cuda", "--dtype", "float32", "--json"}) args.push_back(a);
  const CliRun run = run_cli(args);
  if (run.exit_code != 0 && (run.err.find("no CUDA device is visible") != std::string::npos ||
                             run.err.find("has no CUDA kernels") != std::string::npos))
    GTEST_SKIP() << "no GPU for --device cuda: " << run.err;
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json out = json::parse(run.out);
  EXPECT_EQ(out.at("token_ids").get<std::vector<int>>(), ref["token_ids"].get<std::vector<int>>());
  EXPECT_EQ(out.at("text"), ref["text"]);
}

// --devices cpu,cpu --placement replicas (and a capped device): the engine plans, loads a replica
// per entry and answers as one device does, ids and all.
TEST(Devices, ReplicasAndACapAnswerAsOneDevice) {
  const json ref = load_reference("tiny-a", "one_image");
  for (const std::vector<std::string>& devices :
       {std::vector<std::string>{"--devices", "cpu,cpu", "--placement", "replicas"},
        std::vector<std::string>{"--devices", "cpu=2GiB"}}) {
    auto args = case_args(ref);
    args.insert(args.end(), devices.begin(), devices.end());
    args.push_back("--json");
    const CliRun run = run_cli(args);
    ASSERT_EQ(run.exit_code, 0) << devices[1] << ": " << run.err;
    const json out = json::parse(run.out);
    EXPECT_EQ(out.at("token_ids").get<std::vector<int>>(), ref["token_ids"].get<std::vector<int>>()) << devices[1];
    EXPECT_EQ(out.at("text"), ref["text"]) << devices[1];
    EXPECT_EQ(run.err, "") << devices[1];
  }
}

// Image cases only, so that a build without OpenCV runs them too.
INSTANTIATE_TEST_SUITE_P(Fixtures, OnCuda,
                         ::testing::Values(CaseName{"tiny-a", "one_image"}, CaseName{"tiny-b", "two_images_system"}),
                         [](const auto& info) { return case_test_name(info.param); });

// --json-schema (inline or a file) and --choice reach the engine: the answers are a document of the
// schema and one of the choices, --json says whether the answer is complete, and an unsupported
// schema (or one past the numbers' digit bound) fails the request saying why; an empty choice is a
// usage error.
TEST(Constrained, SchemaInlineOrFileAndChoices) {
  const std::string model = model_dir("tiny-a").string();
  const std::string schema = R"({"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]})";
  const fs::path file = fs::temp_directory_path() / ("qwenvl-cli-schema-" + std::to_string(::getpid()) + ".json");
  { std::ofstream(file) << schema; }
  for (const std::string& given : {schema, file.string()}) {
    const CliRun run = run_cli({"--model", model, "--prompt", "Is it fine?", "--temperature", "0", "--json-schema", given, "--json"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const json out = json::parse(run.out);
    EXPECT_FALSE(out.at("incomplete").get<bool>());
    EXPECT_TRUE(json::parse(out.at("text").get<std::string>()).at("ok").is_boolean()) << out.at("text");
  }
  fs::remove(file);
  const CliRun choice = run_cli({"--model", model, "--prompt", "Yes or no?", "--choice", "yes", "--choice", "no, never"});
  ASSERT_EQ(choice.exit_code, 0) << choice.err;
  EXPECT_TRUE(choice.out == "yes\n" || choice.out == "no, never\n") << choice.out;
  const CliRun refused = run_cli({"--model", model, "--prompt", "q", "--json-schema", R"({"type":"string","pattern":"a"})"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("pattern"), std::string::npos) << refused.err;
  const CliRun past_bound = run_cli({"--model", model, "--prompt", "q", "--json-schema", R"({"type":"integer","minimum":1e17})"});
  EXPECT_EQ(past_bound.exit_code, 3);
  EXPECT_NE(past_bound.err.find("9999999999999999"), std::string::npos) << past_bound.err;
  const CliRun empty_choice = run_cli({"--model", model, "--prompt", "q", "--choice", "yes", "--choice", ""});
  EXPECT_EQ(empty_choice.exit_code, 1) << "a usage error, before the model loads";
  EXPECT_NE(empty_choice.err.find("--choice needs a non-empty text"), std::string::npos) << empty_choice.err;
}

TEST(Help, DocumentsEveryOptionAndGreedy) {
  const CliRun run = run_cli({"--help"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  for (const char* option : {"--model",       "--image",
                             "--video",       "--frames",
                             "--fps",         "--prompt",
                             "--system",      "--max-new-tokens",
                             "--temperature", "--top-k",
                             "--top-p",       "--min-p",
                             "--seed",        "--repetition-penalty",
                             "--stop",        "--device",
                             "--dtype",       "--max-context",
                             "--min-pixels",  "--max-pixels",
                             "--json",        "--devices",
                             "--placement",   "--plan",
                             "--max-batch",   "--json-schema",
                             "--choice"})
    EXPECT_NE(run.out.find(option), std::string::npos) << option;
  EXPECT_NE(run.out.find("--temperature 0 forces greedy"), std::string::npos);
  EXPECT_NE(run.out.find("generation_config.json"), std::string::npos);
  EXPECT_NE(run.out.find("Exit codes"), std::string::npos);
  // Which reader this build has.
  EXPECT_NE(run.out.find(QWENVL_CLI_READS_VIDEO ? "Media: read with OpenCV"
                                                 : "Media: PNG images only (built without OpenCV)"),
            std::string::npos)
      << run.out;
}

// Bad inputs: the stated exit code, nothing on stdout, one line on stderr that says what is wrong.
struct BadInput {
  std::string name;
  std::vector<std::string> args;  // "{model}", "{image}", "{clip}", "{tmp}" are replaced
  int exit_code;
  std::string says;  // part of the message
};
void PrintTo(const BadInput& b, std::ostream* os) { *os << b.name; }

class BadInputs : public ::testing::TestWithParam<BadInput> {
 protected:
  static void SetUpTestSuite() {
    tmp_ = fs::temp_directory_path() / ("qwenvl_cli_bad_" + std::to_string(::getpid()));
    fs::create_directories(tmp_ / "empty");
    fs::create_directories(tmp_ / "broken");
    fs::create_directories(tmp_ / "config_only");
    std::ofstream(tmp_ / "text.png") << "not an image\n";
    std::ofstream(tmp_ / "text.avi") << "not a video\n";
    // A PNG cut short inside its image data: the decoder must fail cleanly, not crash.
    const std::string png = qwenvl::test::read_text(qwenvl::test::fixtures_dir() / "media" / "sample.png");
    std::ofstream(tmp_ / "truncated.png", std::ios::binary) << png.substr(0, 300);
    std::ofstream(tmp_ / "broken" / "config.json") << "{\"model_type\": \"qwen2_5_vl\", ";
    fs::copy_file(model_dir("tiny-a") / "config.json", tmp_ / "config_only" / "config.json");
  }
  static void TearDownTestSuite() { fs::remove_all(tmp_); }
  static fs::path tmp_;
};
fs::path BadInputs::tmp_;

std::string expand(std::string s, const fs::path& tmp) {
  const fs::path fixtures = qwenvl::test::fixtures_dir();
  const std::pair<std::string, std::string> vars[] = {{"{model}", model_dir("tiny-a").string()},
                                                      {"{image}", (fixtures / "media" / "sample.png").string()},
                                                      {"{clip}", (fixtures / "media" / "clip.avi").string()},
                                                      {"{tmp}", tmp.string()}};
  for (const auto& [key, value] : vars)
    for (size_t at; (at = s.find(key)) != std::string::npos;) s.replace(at, key.size(), value);
  return s;
}

TEST_P(BadInputs, FailCleanly) {
  std::vector<std::string> args;
  for (const auto& a : GetParam().args) args.push_back(expand(a, tmp_));
  const CliRun run = run_cli(args);
  EXPECT_EQ(run.exit_code, GetParam().exit_code) << run.err;
  EXPECT_EQ(run.out, "");
  ASSERT_FALSE(run.err.empty());
  EXPECT_EQ(run.err.rfind("qwenvl-cli: ", 0), 0u) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_EQ(run.err.back(), '\n');
  EXPECT_NE(run.err.find(expand(GetParam().says, tmp_)), std::string::npos) << run.err;
}

const std::vector<std::string> kGood = {"--model", "{model}", "--prompt", "hi"};
std::vector<std::string> good_plus(std::vector<std::string> extra) {
  std::vector<std::string> args = kGood;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<BadInput> bad_inputs() {
  std::vector<BadInput> cases = {
      BadInput{"missing_image", good_plus({"--image", "{tmp}/nope.png"}), 1, "{tmp}/nope.png"},
      BadInput{"text_file_named_png", good_plus({"--image", "{tmp}/text.png"}), 1, "{tmp}/text.png"},
      BadInput{"directory_as_image", good_plus({"--image", "{tmp}"}), 1, "is a directory"},
      BadInput{"missing_video", good_plus({"--video", "{tmp}/nope.avi"}), 1, "{tmp}/nope.avi"},
      BadInput{"text_file_named_avi", good_plus({"--video", "{tmp}/text.avi"}), 1, "{tmp}/text.avi"},
      BadInput{
          "missing_model_dir", {"--model", "{tmp}/none", "--image", "{image}", "--prompt", "hi"}, 2, "{tmp}/none"},
      BadInput{
          "empty_model_dir", {"--model", "{tmp}/empty", "--image", "{image}", "--prompt", "hi"}, 2, "config.json"},
      BadInput{
          "broken_config", {"--model", "{tmp}/broken", "--image", "{image}", "--prompt", "hi"}, 2, "config.json"},
      BadInput{"config_without_weights",
               {"--model", "{tmp}/config_only", "--image", "{image}", "--prompt", "hi"},
               2,
               "config_only"},
      BadInput{"no_prompt", {"--model", "{model}", "--image", "{image}"}, 1, "--prompt"},
      BadInput{"no_model", {"--image", "{image}", "--prompt", "hi"}, 1, "--model"},
      BadInput{"unknown_option", good_plus({"--colour", "red"}), 1, "--colour"},
      BadInput{"negative_temperature", good_plus({"--temperature", "-1"}), 1, "--temperature"},
      BadInput{"temperature_not_a_number", good_plus({"--temperature", "warm"}), 1, "--temperature"},
      BadInput{"top_p_above_one", good_plus({"--top-p", "1.5"}), 1, "--top-p"},
      BadInput{"min_p_above_one", good_plus({"--min-p", "2"}), 1, "--min-p"},
      BadInput{"zero_new_tokens", good_plus({"--max-new-tokens", "0"}), 1, "--max-new-tokens"},
      BadInput{"zero_penalty", good_plus({"--repetition-penalty", "0"}), 1, "--repetition-penalty"},
      BadInput{"bad_device", good_plus({"--device", "tpu"}), 1, "--device"},
      BadInput{"bad_dtype", good_plus({"--dtype", "int3"}), 1, "--dtype"},
      BadInput{"image_and_video", good_plus({"--image", "{image}", "--video", "{clip}"}), 1, "--video"},
      BadInput{"frames_and_fps", good_plus({"--video", "{clip}", "--frames", "4", "--fps", "1"}), 1, "--fps"},
      BadInput{"frames_without_video", good_plus({"--image", "{image}", "--frames", "4"}), 1, "--frames"},
      BadInput{"one_frame", good_plus({"--video", "{clip}", "--frames", "1"}), 1, "--frames"},
      BadInput{"zero_fps", good_plus({"--video", "{clip}", "--fps", "0"}), 1, "--fps"},
      BadInput{"infinite_fps", good_plus({"--video", "{clip}", "--fps", "inf"}), 1,
               "--fps must be a finite number > 0, got inf"},
      BadInput{"infinite_temperature", good_plus({"--temperature", "inf"}), 1,
               "--temperature must be a finite number >= 0, got inf"},
      BadInput{"min_above_max_pixels",
               good_plus({"--image", "{image}", "--min-pixels", "9000", "--max-pixels", "3000"}), 1, "--min-pixels"},
      BadInput{"prompt_over_context", good_plus({"--image", "{image}", "--max-context", "40"}), 3, "max_context 40"}};
  if (QWENVL_CLI_READS_VIDEO) {
    cases.push_back({"too_many_frames", good_plus({"--video", "{clip}", "--frames", "40"}), 1, "12 frames"});
  } else {
    // The reason, besides the file name that text_file_named_png checks.
    cases.push_back({"not_png_without_opencv", good_plus({"--image", "{tmp}/text.png"}), 1,
                     "not a PNG file; this qwenvl-cli was built without OpenCV, so only PNG images are read"});
    // Only here: OpenCV 4.6 lets libpng's default handler print "libpng error: ..." on stderr first.
    cases.push_back({"truncated_png", good_plus({"--image", "{tmp}/truncated.png"}), 1, "{tmp}/truncated.png"});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, BadInputs, ::testing::ValuesIn(bad_inputs()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
