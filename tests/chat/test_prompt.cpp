// The model input for a rendered prompt against the Qwen2.5-VL processor: input_ids with each image /
// video pad expanded to prod(grid_thw) / merge² copies and mm_token_type_ids
// (reference/chat_template_<model>.json, which records grid_thw of images and videos of varied sizes).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "chat/prompt.h"
#include "model/config.h"
#include "qwenvl/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl::model {
namespace {

using json = nlohmann::ordered_json;

std::vector<GridThw> grids(const json& j) {
  std::vector<GridThw> out;
  for (const auto& g : j) out.push_back({g[0].get<int64_t>(), g[1].get<int64_t>(), g[2].get<int64_t>()});
  return out;
}

class PromptModel : public ::testing::TestWithParam<std::string> {};

TEST_P(PromptModel, IdsAndTypesEqualTheProcessors) {
  auto dir = test::fixtures_dir() / "models" / GetParam();
  json ref = json::parse(test::read_text(test::fixtures_dir() / "reference" / ("chat_template_" + GetParam() + ".json")));
  Tokenizer tokenizer = Tokenizer::from_model_dir(dir);
  ModelFiles files = load_model_files(dir);
  EXPECT_EQ(files.image.merge_size, ref["merge_size"]["image"].get<int64_t>());
  EXPECT_EQ(files.video.merge_size, ref["merge_size"]["video"].get<int64_t>());
  ChatTemplate chat = ChatTemplate::from_model_dir(dir);
  size_t with_images = 0, with_videos = 0;
  for (const auto& c : ref["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    std::vector<GridThw> images = grids(c["image_grid_thw"]), videos = grids(c["video_grid_thw"]);
    with_images += !images.empty();
    with_videos += !videos.empty();
    PromptTokens p = build_prompt_tokens(tokenizer, c["rendered"].get<std::string>(), images, videos,
                                         files.image.merge_size, files.video.merge_size);
    EXPECT_EQ(p.input_ids, c["input_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(p.mm_token_type_ids, c["mm_token_type_ids"].get<std::vector<int32_t>>());
    // The whole path from the conversation: render, then build.
    ChatOptions options;
    options.add_generation_prompt = c["add_generation_prompt"];
    options.add_vision_id = c["add_vision_id"];
    PromptTokens q = build_prompt_tokens(tokenizer, chat.render_json(c["messages"], options), images, videos,
                                         files.image.merge_size, files.video.merge_size);
    EXPECT_EQ(q.input_ids, p.input_ids);
  }
  EXPECT_GE(with_images, 8u);
  EXPECT_GE(with_videos, 4u);
}

TEST_P(PromptModel, PadCountMustMatchTheMedia) {
  auto dir = test::fixtures_dir() / "models" / GetParam();
  Tokenizer tokenizer = Tokenizer::from_model_dir(dir);
  const std::string one_image = "<|vision_start|><|image_pad|><|vision_end|>What?";
  const std::string one_video = "<|vision_start|><|video_pad|><|vision_end|>What?";
  EXPECT_THROW(build_prompt_tokens(tokenizer, one_image, {}, {}, 2, 2), Error);
  EXPECT_THROW(build_prompt_tokens(tokenizer, one_image, {{1, 4, 4}, {1, 4, 4}}, {}, 2, 2), Error);
  EXPECT_THROW(build_prompt_tokens(tokenizer, one_image, {{1, 4, 4}}, {{2, 4, 4}}, 2, 2), Error);
  EXPECT_THROW(build_prompt_tokens(tokenizer, one_video, {}, {}, 2, 2), Error);
  EXPECT_THROW(build_prompt_tokens(tokenizer, "no media", {{1, 4, 4}}, {}, 2, 2), Error);
  EXPECT_THROW(build_prompt_tokens(tokenizer, one_image, {{1, 0, 4}}, {}, 2, 2), Error);
}

INSTANTIATE_TEST_SUITE_P(Models, PromptModel, ::testing::Values("tiny-a", "tiny-b"));

}  // namespace
}  // namespace qwenvl::model
