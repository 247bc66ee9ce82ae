// load_model_files against the effective configuration transformers 5.17.0 loads from the same
// directories (OUT/reference/config_<name>.json, written by scripts/fixtures/models.py).
#include "error_of.h"
#include "model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qwenvl/error.h"
#include "test_util.h"

namespace qwenvl::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

json reference(const std::string& name) {
  return json::parse(test::read_text(test::fixtures_dir() / "reference" / ("config_" + name + ".json")));
}

std::vector<std::string> reference_names() {
  json index = json::parse(test::read_text(test::fixtures_dir() / "reference" / "configs.json"));
  std::vector<std::string> names;
  for (auto& [name, path] : index.items()) names.push_back(name);
  return names;
}

std::optional<int64_t> opt_int(const json& v) {
  return v.is_null() ? std::nullopt : std::optional<int64_t>(v.get<int64_t>());
}
std::optional<double> opt_double(const json& v) {
  return v.is_null() ? std::nullopt : std::optional<double>(v.get<double>());
}
std::optional<bool> opt_bool(const json& v) { return v.is_null() ? std::nullopt : std::optional<bool>(v.get<bool>()); }

void expect_text(const TextConfig& t, const json& r) {
  EXPECT_EQ(t.vocab_size, r["vocab_size"]);
  EXPECT_EQ(t.hidden_size, r["hidden_size"]);
  EXPECT_EQ(t.intermediate_size, r["intermediate_size"]);
  EXPECT_EQ(t.num_hidden_layers, r["num_hidden_layers"]);
  EXPECT_EQ(t.num_attention_heads, r["num_attention_heads"]);
  EXPECT_EQ(t.num_key_value_heads, r["num_key_value_heads"]);
  EXPECT_EQ(t.head_dim(), r["head_dim"]);
  EXPECT_EQ(t.hidden_act, r["hidden_act"]);
  EXPECT_EQ(t.max_position_embeddings, r["max_position_embeddings"]);
  EXPECT_EQ(t.rms_norm_eps, r["rms_norm_eps"].get<double>());
  EXPECT_EQ(t.rope_theta, r["rope_theta"].get<double>());
  EXPECT_EQ(t.rope_type, r["rope_type"]);
  EXPECT_EQ(t.mrope_section, r["mrope_section"].is_null() ? std::vector<int64_t>{}
                                                          : r["mrope_section"].get<std::vector<int64_t>>());
  EXPECT_EQ(t.use_sliding_window, r["use_sliding_window"]);
  EXPECT_EQ(t.sliding_window, opt_int(r["sliding_window"]));
  EXPECT_EQ(t.max_window_layers, r["max_window_layers"]);
  EXPECT_EQ(t.layer_types, r["layer_types"].get<std::vector<std::string>>());
  EXPECT_EQ(t.bos_token_id, opt_int(r["bos_token_id"]));
  EXPECT_EQ(t.eos_token_ids, r["eos_token_ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(t.pad_token_id, opt_int(r["pad_token_id"]));
}

void expect_vision(const VisionConfig& v, const json& r) {
  EXPECT_EQ(v.depth, r["depth"]);
  EXPECT_EQ(v.hidden_size, r["hidden_size"]);
  EXPECT_EQ(v.hidden_act, r["hidden_act"]);
  EXPECT_EQ(v.intermediate_size, r["intermediate_size"]);
  EXPECT_EQ(v.num_heads, r["num_heads"]);
  EXPECT_EQ(v.head_dim(), r["head_dim"]);
  EXPECT_EQ(v.in_channels, r["in_channels"]);
  EXPECT_EQ(v.patch_size, r["patch_size"]);
  EXPECT_EQ(v.spatial_merge_size, r["spatial_merge_size"]);
  EXPECT_EQ(v.temporal_patch_size, r["temporal_patch_size"]);
  EXPECT_EQ(v.tokens_per_second, r["tokens_per_second"]);
  EXPECT_EQ(v.window_size, r["window_size"]);
  EXPECT_EQ(v.out_hidden_size, r["out_hidden_size"]);
  EXPECT_EQ(v.fullatt_block_indexes, r["fullatt_block_indexes"].get<std::vector<int64_t>>());
  EXPECT_EQ(v.rope_theta, r["rope_theta"].get<double>());
  EXPECT_EQ(v.rope_type, r["rope_type"]);
}

void expect_generation(const GenerationConfig& g, const json& r) {
  EXPECT_EQ(g.from_file, r["from_file"]);
  EXPECT_EQ(g.do_sample, opt_bool(r["do_sample"]));
  EXPECT_EQ(g.temperature, opt_double(r["temperature"]));
  EXPECT_EQ(g.top_k, opt_int(r["top_k"]));
  EXPECT_EQ(g.top_p, opt_double(r["top_p"]));
  EXPECT_EQ(g.min_p, opt_double(r["min_p"]));
  EXPECT_EQ(g.repetition_penalty, opt_double(r["repetition_penalty"]));
  EXPECT_EQ(g.max_new_tokens, opt_int(r["max_new_tokens"]));
  EXPECT_EQ(g.max_length, opt_int(r["max_length"]));
  EXPECT_EQ(g.eos_token_ids, r["eos_token_ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(g.bos_token_id, opt_int(r["bos_token_id"]));
  EXPECT_EQ(g.pad_token_id, opt_int(r["pad_token_id"]));
}

void expect_processor(const ProcessorConfig& p, const json& r, const json& load_error) {
  EXPECT_EQ(p.min_pixels, r["min_pixels"]);
  EXPECT_EQ(p.max_pixels, r["max_pixels"]);
  EXPECT_EQ(p.patch_size, r["patch_size"]);
  EXPECT_EQ(p.temporal_patch_size, r["temporal_patch_size"]);
  EXPECT_EQ(p.merge_size, r["merge_size"]);
  EXPECT_EQ(p.image_mean, r["image_mean"].get<std::vector<double>>());
  EXPECT_EQ(p.image_std, r["image_std"].get<std::vector<double>>());
  EXPECT_EQ(p.rescale_factor, r["rescale_factor"].get<double>());
  EXPECT_EQ(p.do_resize, r["do_resize"]);
  EXPECT_EQ(p.do_rescale, r["do_rescale"]);
  EXPECT_EQ(p.do_normalize, r["do_normalize"]);
  EXPECT_EQ(p.do_convert_rgb, r["do_convert_rgb"]);
  EXPECT_EQ(p.resample, r["resample"]);
  // transformers refuses to load a processor without a file; the engine then keeps the class defaults.
  EXPECT_EQ(p.source.empty(), !load_error.is_null()) << "source " << p.source;
}

class ConfigMatchesTransformers : public ::testing::TestWithParam<std::string> {};

TEST_P(ConfigMatchesTransformers, EveryField) {
  const json r = reference(GetParam());
  const ModelFiles files = load_model_files(test::fixtures_dir() / r["path"].get<std::string>());
  const ModelConfig& c = files.model;
  {
    SCOPED_TRACE("text");
    expect_text(c.text, r["text"]);
  }
  {
    SCOPED_TRACE("vision");
    expect_vision(c.vision, r["vision"]);
  }
  EXPECT_EQ(c.image_token_id, r["image_token_id"]);
  EXPECT_EQ(c.video_token_id, r["video_token_id"]);
  EXPECT_EQ(c.vision_start_token_id, r["vision_start_token_id"]);
  EXPECT_EQ(c.vision_end_token_id, r["vision_end_token_id"]);
  EXPECT_EQ(c.tie_word_embeddings, r["tie_word_embeddings"]);
  EXPECT_EQ(c.dtype, r["dtype"].is_null() ? std::string() : r["dtype"].get<std::string>());
  EXPECT_EQ(c.nested, r["nested"]);
  {
    SCOPED_TRACE("generation");
    expect_generation(files.generation, r["generation"]);
  }
  {
    SCOPED_TRACE("image processor");
    expect_processor(files.image, r["image"], r["image_load_error"]);
  }
  {
    SCOPED_TRACE("video processor");
    expect_processor(files.video, r["video"], r["video_load_error"]);
  }
}

INSTANTIATE_TEST_SUITE_P(AllDirectories, ConfigMatchesTransformers, ::testing::ValuesIn(reference_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

TEST(ConfigReferences, CoverEveryLayout) {
  // The parameterised test is only as good as the set of directories it runs on.
  std::vector<std::string> names = reference_names();
  for (const char* expected : {"tiny-a", "tiny-b", "qwen2.5-vl-3b", "qwen2.5-vl-7b", "tiny-a-no-gen-no-preproc",
                               "tiny-b-no-gen-no-proc", "edge-flat-defaults", "edge-nested-legacy"})
    EXPECT_THAT(names, ::testing::Contains(std::string(expected)));
}

TEST(LoadModelConfig, MatchesLoadModelFiles) {
  const json r = reference("tiny-a");
  const fs::path dir = test::fixtures_dir() / r["path"].get<std::string>();
  const ModelConfig c = load_model_config(dir / "config.json");
  expect_text(c.text, r["text"]);
  expect_vision(c.vision, r["vision"]);
}

// Error cases: each message names the file and the key at fault.
class ConfigErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qwenvl_test_config_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Start from a valid directory: tiny-b's configuration files (no weights needed).
    const fs::path tiny_b = test::fixtures_dir() / "models" / "tiny-b";
    for (const char* name : {"config.json", "generation_config.json", "processor_config.json"})
      fs::copy_file(tiny_b / name, dir_ / name);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
  }
  json read(const std::string& name) { return json::parse(test::read_text(dir_ / name)); }

  std::string error_of(const fs::path& dir) {
    try {
      load_model_files(dir);
    } catch (const qwenvl::Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no qwenvl::Error for " << dir;
    return {};
  }

  fs::path dir_;
};

TEST_F(ConfigErrors, ValidCopyLoads) { EXPECT_NO_THROW(load_model_files(dir_)); }

TEST_F(ConfigErrors, MissingDirectory) {
  const std::string message = error_of(dir_ / "nowhere");
  EXPECT_THAT(message, HasSubstr("nowhere"));
}

TEST_F(ConfigErrors, MissingConfigJson) {
  fs::remove(dir_ / "config.json");
  EXPECT_THAT(error_of(dir_), HasSubstr("config.json"));
}

TEST_F(ConfigErrors, MalformedConfigJson) {
  write("config.json", "{\"text_config\": {\"hidden_size\": 64,, }");
  const std::string message = error_of(dir_);
  EXPECT_THAT(message, HasSubstr("config.json"));
  EXPECT_THAT(message, HasSubstr("malformed JSON"));
}

TEST_F(ConfigErrors, TopLevelNotAnObject) {
  write("config.json", "[1, 2, 3]");
  EXPECT_THAT(error_of(dir_), HasSubstr("config.json"));
}

TEST_F(ConfigErrors, WrongTypeNamesTheKey) {
  json config = read("config.json");
  config["text_config"]["hidden_size"] = "64";
  write("config.json", config.dump());
  const std::string message = error_of(dir_);
  EXPECT_THAT(message, HasSubstr("config.json"));
  EXPECT_THAT(message, HasSubstr("text_config.hidden_size"));
}

TEST_F(ConfigErrors, AnotherModelTypeIsNamed) {
  json config = read("config.json");
  config["model_type"] = "llama";
  write("config.json", config.dump());
  const std::string message = error_of(dir_);
  EXPECT_THAT(message, HasSubstr("config.json"));
  EXPECT_THAT(message, HasSubstr("'llama' is not Qwen2.5-VL"));
}

TEST_F(ConfigErrors, FloatWhereIntegerExpected) {
  json config = read("config.json");
  config["vision_config"]["depth"] = 3.5;
  write("config.json", config.dump());
  EXPECT_THAT(error_of(dir_), HasSubstr("vision_config.depth"));
}

TEST_F(ConfigErrors, WrongTypeInRopeParameters) {
  json config = read("config.json");
  config["text_config"]["rope_parameters"]["mrope_section"] = "4,6,6";
  write("config.json", config.dump());
  EXPECT_THAT(error_of(dir_), HasSubstr("text_config.rope_parameters.mrope_section"));
}

TEST_F(ConfigErrors, MropeSectionMustCoverHalfTheHeadDim) {
  json config = read("config.json");
  config["text_config"]["rope_parameters"]["mrope_section"] = {4, 6, 7};
  write("config.json", config.dump());
  EXPECT_THAT(error_of(dir_), HasSubstr("mrope_section"));
}

TEST_F(ConfigErrors, WrongTypeInGenerationConfig) {
  json generation = read("generation_config.json");
  generation["eos_token_id"] = {"<|im_end|>"};
  write("generation_config.json", generation.dump());
  const std::string message = error_of(dir_);
  EXPECT_THAT(message, HasSubstr("generation_config.json"));
  EXPECT_THAT(message, HasSubstr("eos_token_id"));
}

TEST_F(ConfigErrors, MalformedGenerationConfig) {
  write("generation_config.json", "{");
  EXPECT_THAT(error_of(dir_), HasSubstr("generation_config.json"));
}

TEST_F(ConfigErrors, WrongTypeInProcessorConfig) {
  json processor = read("processor_config.json");
  processor["image_processor"]["size"]["longest_edge"] = "big";
  write("processor_config.json", processor.dump());
  const std::string message = error_of(dir_);
  EXPECT_THAT(message, HasSubstr("processor_config.json"));
  EXPECT_THAT(message, HasSubstr("image_processor.size.longest_edge"));
}

TEST_F(ConfigErrors, WrongTypeInPreprocessorConfig) {
  fs::remove(dir_ / "processor_config.json");
  write("preprocessor_config.json", R"({"min_pixels": 3136, "max_pixels": 200704, "do_resize": "yes"})");
  const std::string message = error_of(dir_);
  EXPECT_THAT(message, HasSubstr("preprocessor_config.json"));
  EXPECT_THAT(message, HasSubstr("do_resize"));
}

TEST_F(ConfigErrors, LoadModelConfigOnMissingFile) {
  try {
    load_model_config(dir_ / "absent.json");
    ADD_FAILURE() << "no error";
  } catch (const qwenvl::Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("absent.json"));
  }
}

}  // namespace
}  // namespace qwenvl::model
