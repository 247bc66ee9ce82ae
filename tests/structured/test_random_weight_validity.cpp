// Random-weight models, which write noise unconstrained, give valid documents: 100 generated noise
// images, each asked with one of 20 schemas (random_weight_schemas.json, every supported feature),
// sampled on the tiny-a and tiny-b fixtures, all in flight at once. Every complete answer is valid by
// jsonschema (validate_answers.py, the project's venv); an answer cut by max_new_tokens ends with
// "length", is marked incomplete and counted apart, and only schemas with unbounded strings or arrays
// may be cut: max_new_tokens exceeds the longest document of every bounded one.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "../test_util.h"
#include "qwenvl/engine.h"

namespace qwenvl {
namespace {

using json = nlohmann::ordered_json;  // the schemas' order of properties is the grammar's

constexpr int kImages = 100;
// Above the bytes of the longest document of a bounded schema here (each token spells a byte or
// more): strings of at most 6 characters (12 bytes each at worst: an escaped surrogate pair), three
// boxes of two numbers of at most 17 characters.
constexpr int kMaxNewTokens = 256;

// An RGB image of `variant`'s pattern: noise, stripes, a gradient or blocks of noise.
std::vector<uint8_t> noise_image(int variant, int width, int height, std::mt19937& rng) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  std::uniform_int_distribution<int> byte(0, 255);
  const int block = 4 + variant % 5;
  std::vector<uint8_t> palette(64 * 3);
  for (auto& v : palette) v = static_cast<uint8_t>(byte(rng));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        uint8_t v = 0;
        switch (variant % 4) {
          case 0: v = static_cast<uint8_t>(byte(rng)); break;
          case 1: v = static_cast<uint8_t>(((x / block + y / block) % 2) * 255 - c * 40); break;
          case 2: v = static_cast<uint8_t>((x * 255 / width + y * 255 / height + c * 85) / 2); break;
          default: v = palette[((x / block * 7 + y / block * 13) % 64) * 3 + c]; break;
        }
        rgb[(static_cast<size_t>(y) * width + x) * 3 + c] = v;
      }
  return rgb;
}

std::unique_ptr<Engine> make_engine(const std::string& model) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / model).string();
  o.max_batch = kImages / 2;
  o.max_context = 1024;
  return Engine::create(o);
}

TEST(RandomWeightValidity, EveryCompleteAnswerIsValidAndOnlyUnboundedSchemasAreCut) {
  const json schemas =
      json::parse(test::read_text(std::filesystem::path(QWENVL_TEST_SOURCE_ROOT) / "tests/structured/random_weight_schemas.json"))
          .at("schemas");
  ASSERT_EQ(schemas.size(), 20u);
  std::vector<std::unique_ptr<Engine>> engines;
  engines.push_back(make_engine("tiny-a"));
  engines.push_back(make_engine("tiny-b"));

  std::mt19937 rng(17);
  std::vector<std::future<Result>> results;
  for (int i = 0; i < kImages; ++i) {
    const int width = 28 + 14 * (i % 4), height = 28 + 14 * (i / 4 % 3);
    const std::vector<uint8_t> rgb = noise_image(i, width, height, rng);
    Request r;
    r.images.push_back(FrameView::packed(PixelFormat::kRGB, width, height, rgb.data()));
    r.prompt = "Describe the image as JSON.";
    r.sampling.json_schema = schemas[i % schemas.size()].at("schema").dump();
    r.sampling.max_new_tokens = kMaxNewTokens;
    r.sampling.temperature = 1.0;  // noise: the mask alone keeps the answer a document
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0;
    r.sampling.seed = static_cast<uint64_t>(i);
    results.push_back(engines[i % engines.size()]->submit(std::move(r)).result);  // the image is copied by now
  }

  json answers = json::array();
  int complete = 0, cut = 0;
  for (int i = 0; i < kImages; ++i) {
    const json& entry = schemas[i % schemas.size()];
    const Result r = results[i].get();
    ASSERT_EQ(r.status, Status::kAnswered) << entry.at("name") << ": " << r.error;
    if (r.incomplete) {
      ++cut;
      EXPECT_EQ(r.finish_reason, "length") << entry.at("name");
      EXPECT_FALSE(entry.at("bounded").get<bool>()) << entry.at("name") << " has bounded documents, yet was cut: " << r.text;
    } else {
      ++complete;
      EXPECT_EQ(r.finish_reason, "eos") << entry.at("name") << ": " << r.text;
    }
    answers.push_back({{"schema", entry.at("schema")}, {"text", r.text}, {"complete", !r.incomplete}});
  }
  EXPECT_GE(complete, kImages * 9 / 10) << cut << " answers cut";

  const auto file = std::filesystem::temp_directory_path() / ("qwenvl_random_weight_answers_" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << json{{"answers", answers}}.dump();
  const std::string command =
#ifdef __SANITIZE_ADDRESS__
      // scripts/sanitize.sh preloads ASan into this python too; CPython frees nothing at exit, so it
      // is checked for memory errors, not leaks (as tests/sanitizers/python-without-leak-check does).
      std::string("ASAN_OPTIONS=\"$ASAN_OPTIONS:detect_leaks=0\" ") +
#else
      std::string() +
#endif
      QWENVL_REFERENCE_PYTHON + " " + QWENVL_TEST_SOURCE_ROOT + "/tests/structured/validate_answers.py " + file.string() + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  const int status = pclose(pipe);
  std::filesystem::remove(file);
  std::printf("%d answers complete, %d cut; jsonschema: %s", complete, cut, output.c_str());
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("validated " + std::to_string(complete) + " complete answers of " + std::to_string(kImages) + ": 0 invalid"),
            std::string::npos)
      << output;
}

}  // namespace
}  // namespace qwenvl
