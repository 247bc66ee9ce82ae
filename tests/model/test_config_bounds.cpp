// Configurations that ask for absurd sizes (found by scripts/fuzz.sh fuzz_config, and by hand: a
// billion layers made the loader build a billion layer names) are refused by load_model_files with
// one line naming the file and the field, before anything is sized by them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "error_of.h"
#include "model/config.h"
#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// Qwen2.5-VL-7B-Instruct's config.json, less the fields that do not matter here.
json published_7b() {
  return json::parse(R"({"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
      "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
      "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2}})");
}

class ConfigBounds : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qwenvl_test_config_bounds_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The error load_model_files gives for this config.json, and how long it took.
  std::string error_of(const json& config) {
    std::ofstream(dir_ / "config.json", std::ios::binary | std::ios::trunc) << config.dump();
    const auto start = std::chrono::steady_clock::now();
    try {
      load_model_files(dir_);
    } catch (const Error& e) {
      seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return e.what();
    }
    return "<loaded>";
  }

  fs::path dir_;
  double seconds_ = 0;
};

TEST_F(ConfigBounds, ThePublishedConfigLoads) { EXPECT_EQ(error_of(published_7b()), "<loaded>"); }

TEST_F(ConfigBounds, ABillionLayersIsRefusedAtOnce) {
  json config = published_7b();
  config["num_hidden_layers"] = 1000000000;
  const std::string message = error_of(config);
  EXPECT_THAT(message, HasSubstr((dir_ / "config.json").string()));
  EXPECT_THAT(message, HasSubstr("key 'num_hidden_layers' is 1000000000, outside 1..1024"));
  EXPECT_LT(seconds_, 1.0);  // nothing was built for the billion layers
}

TEST_F(ConfigBounds, EachSizeFieldIsBounded) {
  const std::vector<std::pair<std::vector<std::string>, json>> cases = {
      {{"vocab_size"}, int64_t{1} << 40},
      {{"hidden_size"}, int64_t{1} << 40},
      {{"intermediate_size"}, 0},
      {{"num_attention_heads"}, -4},
      {{"num_key_value_heads"}, int64_t{1} << 62},
      {{"vision_config", "depth"}, 1000000000},
      {{"vision_config", "hidden_size"}, int64_t{1} << 33},
      {{"vision_config", "num_heads"}, 0},
      {{"vision_config", "patch_size"}, 1 << 20},
      {{"vision_config", "spatial_merge_size"}, int64_t{1} << 31},
      {{"vision_config", "out_hidden_size"}, -1},
  };
  for (const auto& [path, value] : cases) {
    json config = published_7b();
    json* field = &config;
    std::string name;
    for (const std::string& key : path) {
      field = &(*field)[key];
      name += (name.empty() ? "" : ".") + key;
    }
    *field = value;
    SCOPED_TRACE(name);
    const std::string message = error_of(config);
    EXPECT_THAT(message, HasSubstr("config.json: key '" + name + "' is "));
    EXPECT_THAT(message, HasSubstr("outside 1.."));
  }
}

TEST_F(ConfigBounds, NestedConfigsNameTheNestedField) {
  json config = {{"model_type", "qwen2_5_vl"}, {"text_config", published_7b()}};
  config["text_config"].erase("vision_config");
  config["text_config"]["num_hidden_layers"] = 1000000000;
  EXPECT_THAT(error_of(config), HasSubstr("key 'text_config.num_hidden_layers' is 1000000000, outside 1..1024"));
}

TEST_F(ConfigBounds, ANumberPastADoubleIsMalformedJson) {
  // Found by fuzz_config: nlohmann's out_of_range (not a parse_error) escaped load_model_files.
  std::ofstream(dir_ / "config.json", std::ios::binary | std::ios::trunc) << R"({"rms_norm_eps": 4444444e444444})";
  std::string message;
  try {
    load_model_files(dir_);
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_THAT(message, HasSubstr("config.json: malformed JSON"));
  EXPECT_THAT(message, HasSubstr("number overflow"));
}

TEST_F(ConfigBounds, ANegativeMropeSectionIsRefused) {
  // It used to reach libtorch, which answered with a stack trace.
  json config = published_7b();
  config["rope_scaling"]["mrope_section"] = {-8, 40, 32};
  EXPECT_THAT(error_of(config), HasSubstr("key 'mrope_section' holds -8, outside 0..head_dim / 2 = 64"));
}

}  // namespace
}  // namespace qwenvl::model
