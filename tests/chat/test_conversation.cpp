// Questions with earlier text turns (Request::history) against transformers 5.17's processor: the
// "history" cases of reference/chat_template_<model>.json hold the system prompt, the turns and the
// question's items, with the processor's rendering and input ids for the conversation built from them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "chat/chat_reference.h"
#include "chat/chat_template.h"
#include "chat/conversation.h"
#include "chat/prompt.h"
#include "model/config.h"
#include "runtime/request_preparation.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl::model {
namespace {

using json = nlohmann::ordered_json;

using test_reference::to_items;

std::vector<Turn> to_turns(const json& turns) {
  std::vector<Turn> out;
  for (const auto& t : turns) out.push_back({t[0].get<std::string>(), t[1].get<std::string>()});
  return out;
}

std::vector<GridThw> grids(const json& j) {
  std::vector<GridThw> out;
  for (const auto& g : j) out.push_back({g[0].get<int64_t>(), g[1].get<int64_t>(), g[2].get<int64_t>()});
  return out;
}

class ConversationModel : public ::testing::TestWithParam<std::string> {};

TEST_P(ConversationModel, HistoryRendersAndTokenizesAsTheProcessor) {
  const auto dir = test::fixtures_dir() / "models" / GetParam();
  json ref = json::parse(test::read_text(test::fixtures_dir() / "reference" / ("chat_template_" + GetParam() + ".json")));
  ChatTemplate chat = ChatTemplate::from_model_dir(dir);
  Tokenizer tokenizer = Tokenizer::from_model_dir(dir);
  ModelFiles files = load_model_files(dir);
  size_t cases = 0, with_system = 0, multi_turn = 0;
  for (const auto& c : ref["cases"]) {
    if (!c.contains("history")) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    ++cases;
    const json& h = c["history"];
    const std::vector<Turn> turns = to_turns(h["turns"]);
    with_system += !h["system_prompt"].get<std::string>().empty();
    multi_turn += turns.size() > 1;
    ChatOptions options;
    options.add_generation_prompt = c["add_generation_prompt"];
    options.add_vision_id = c["add_vision_id"];
    const std::string rendered = chat.render(conversation(h["system_prompt"], turns, to_items(h["user"])), options);
    EXPECT_EQ(rendered, c["rendered"].get<std::string>());
    const PromptTokens p = build_prompt_tokens(tokenizer, rendered, grids(c["image_grid_thw"]), grids(c["video_grid_thw"]),
                                               files.image.merge_size, files.video.merge_size);
    EXPECT_EQ(p.input_ids, c["input_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(p.mm_token_type_ids, c["mm_token_type_ids"].get<std::vector<int32_t>>());
  }
  EXPECT_GE(cases, 5u);
  EXPECT_GE(with_system, 2u);
  EXPECT_GE(multi_turn, 2u);
}

// The engine's own path (render_prompt of a Request with history) renders the same conversation:
// the question's items come from the request's media, the turns from Request::history.
TEST_P(ConversationModel, RequestHistoryReachesThePrompt) {
  const auto dir = test::fixtures_dir() / "models" / GetParam();
  json ref = json::parse(test::read_text(test::fixtures_dir() / "reference" / ("chat_template_" + GetParam() + ".json")));
  runtime::ModelAssets assets{load_model_files(dir), Tokenizer::from_model_dir(dir), ChatTemplate::from_model_dir(dir)};
  size_t checked = 0;
  static const uint8_t pixel[3] = {0, 0, 0};
  for (const auto& c : ref["cases"]) {
    if (!c.contains("history") || c["add_vision_id"].get<bool>()) continue;
    const json& user = c["history"]["user"];
    // The engine puts media first, then the prompt: only cases laid out that way.
    if (user.size() != 2 || user[1]["type"] != "text") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    Request request;
    const FrameView frame = FrameView::packed(PixelFormat::kRGB, 1, 1, pixel);
    if (user[0]["type"] == "image") request.images.push_back(frame);
    else request.clip = {frame, frame};
    request.prompt = user[1]["text"];
    request.system_prompt = c["history"]["system_prompt"];
    request.history = to_turns(c["history"]["turns"]);
    EXPECT_EQ(runtime::render_prompt(assets, request), c["rendered"].get<std::string>());
    ++checked;
  }
  EXPECT_GE(checked, 4u);
}

TEST(Conversation, WithoutHistoryIsASingleTurn) {
  const auto a = conversation("sys", {}, {ContentItem::image(), ContentItem::of_text("q")});
  const auto b = single_turn("sys", {ContentItem::image(), ContentItem::of_text("q")});
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].role, b[i].role);
  const auto c = conversation("", {{"u1", "a1"}, {"u2", "a2"}}, {ContentItem::of_text("q")});
  ASSERT_EQ(c.size(), 5u);
  EXPECT_EQ(c[0].role, "user");
  EXPECT_EQ(c[1].role, "assistant");
  EXPECT_EQ(std::get<std::string>(c[1].content), "a1");
  EXPECT_EQ(std::get<std::vector<ContentItem>>(c[2].content).front().text, "u2");
  EXPECT_EQ(c[4].role, "user");
}

INSTANTIATE_TEST_SUITE_P(Models, ConversationModel, ::testing::Values("tiny-a", "tiny-b"));

}  // namespace
}  // namespace qwenvl::model
