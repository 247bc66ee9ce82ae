// Generation settings resolved as transformers' generate() resolves them when the caller sets
// nothing (generation_config.json, then its global defaults), and the request's own values on top.
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "runtime/generation_settings.h"
#include "test_util.h"

namespace qwenvl::runtime {
namespace {

class GenerationDefaults : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerationDefaults, UnsetRequestTakesWhatTransformersTakes) {
  const auto dir = test::fixtures_dir() / "models" / GetParam();
  const auto files = model::load_model_files(dir);
  const auto index = nlohmann::json::parse(
      test::read_text(test::fixtures_dir() / "reference" / "network" / GetParam() / "index.json"));
  const auto& ref = index.at("generation_defaults");
  const auto g = resolve_generation({}, files.generation, files.model, /*default_max_new_tokens=*/77);
  EXPECT_EQ(g.sampling.do_sample, ref.at("do_sample").get<bool>());
  EXPECT_DOUBLE_EQ(g.sampling.temperature, ref.at("temperature").get<double>());
  EXPECT_EQ(g.sampling.top_k, ref.at("top_k").get<int64_t>());
  EXPECT_DOUBLE_EQ(g.sampling.top_p, ref.at("top_p").get<double>());
  EXPECT_EQ(g.sampling.min_p.has_value(), !ref.at("min_p").is_null());
  EXPECT_DOUBLE_EQ(g.sampling.repetition_penalty, ref.at("repetition_penalty").get<double>());
  EXPECT_EQ(g.eos_token_ids, ref.at("eos_token_id").get<std::vector<int64_t>>());
  // transformers bounds the total length by max_length (20) when nothing sets max_new_tokens; the
  // engine uses its own default number of new tokens instead (EngineOptions::default_max_new_tokens).
  if (ref.at("max_new_tokens").is_null()) EXPECT_EQ(g.max_new_tokens, 77);
  else EXPECT_EQ(g.max_new_tokens, ref.at("max_new_tokens").get<int64_t>());
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, GenerationDefaults, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "tiny-a" ? "TinyA" : "TinyB"; });

TEST(GenerationSettings, RequestValuesWin) {
  model::GenerationConfig file;
  file.do_sample = true;
  file.temperature = 0.7;
  file.top_k = 20;
  model::ModelConfig model;
  SamplingParams r;
  r.temperature = 0.0;
  r.max_new_tokens = 5;
  r.repetition_penalty = 1.2;
  r.stop_strings = {"###"};
  auto g = resolve_generation(r, file, model, 128);
  EXPECT_FALSE(g.sampling.do_sample) << "temperature 0 means greedy";
  EXPECT_EQ(g.max_new_tokens, 5);
  EXPECT_DOUBLE_EQ(g.sampling.repetition_penalty, 1.2);
  EXPECT_EQ(g.stop_strings, std::vector<std::string>{"###"});
  r.temperature = 1.3;
  r.seed = 9;
  g = resolve_generation(r, file, model, 128);
  EXPECT_TRUE(g.sampling.do_sample);
  EXPECT_DOUBLE_EQ(g.sampling.temperature, 1.3);
  EXPECT_EQ(g.sampling.top_k, 20);
  EXPECT_EQ(g.sampling.seed, 9u);
}

// A temperature below kGreedyTemperature is greedy (vLLM's rule): 1e-45 used to divide the logits
// into inf and fail the request with a torch stack trace. From the request and from the file alike.
TEST(GenerationSettings, ATemperatureBelowTheGreedyThresholdIsGreedy) {
  model::GenerationConfig file;
  model::ModelConfig model;
  SamplingParams r;
  for (double t : {1e-45, 1e-300, kGreedyTemperature / 2}) {
    r.temperature = t;
    EXPECT_FALSE(resolve_generation(r, file, model, 128).sampling.do_sample) << "temperature " << t;
  }
  r.temperature = kGreedyTemperature;
  EXPECT_TRUE(resolve_generation(r, file, model, 128).sampling.do_sample);
  file.do_sample = true;
  file.temperature = 1e-30;
  EXPECT_FALSE(resolve_generation(SamplingParams{}, file, model, 128).sampling.do_sample)
      << "generation_config.json's temperature 1e-30";
}

TEST(GenerationSettings, OutOfRangeValuesAreErrorsNamingThem) {
  model::GenerationConfig file;
  model::ModelConfig model;
  auto expect_error = [&](SamplingParams r, const std::string& name) {
    try {
      resolve_generation(r, file, model, 128);
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  SamplingParams r;
  r.temperature = -1;
  expect_error(r, "temperature");
  r.temperature = std::numeric_limits<double>::infinity();
  expect_error(r, "temperature");
  r.temperature = std::numeric_limits<double>::quiet_NaN();
  expect_error(r, "temperature");
  r = {};
  r.top_p = 0;
  expect_error(r, "top_p");
  r = {};
  r.min_p = 2;
  expect_error(r, "min_p");
  r = {};
  r.top_k = -3;
  expect_error(r, "top_k");
  r = {};
  r.max_new_tokens = 0;
  expect_error(r, "max_new_tokens");
  r = {};
  r.repetition_penalty = 0;
  expect_error(r, "repetition_penalty");
  r = {};
  r.stop_strings = {""};
  expect_error(r, "stop strings");
}

}  // namespace
}  // namespace qwenvl::runtime
