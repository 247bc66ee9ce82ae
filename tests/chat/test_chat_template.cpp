// Chat template lookup and rendering against transformers 5.17's processor
// (reference/chat_template_<model>.json, reference/chat_template_lookup.json).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "chat/chat_reference.h"
#include "chat/chat_template.h"
#include "qwenvl/error.h"
#include "test_util.h"

namespace qwenvl::model {
namespace {

using json = nlohmann::ordered_json;

json load_reference(const std::string& file) {
  return json::parse(test::read_text(test::fixtures_dir() / "reference" / file));
}

using test_reference::to_items;

std::vector<Message> to_messages(const json& messages) {
  std::vector<Message> out;
  for (const auto& m : messages) {
    if (m["content"].is_string()) out.push_back({m["role"], m["content"].get<std::string>()});
    else out.push_back({m["role"], to_items(m["content"])});
  }
  return out;
}

class ChatTemplateModel : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateModel, FoundWhereTheProcessorFindsIt) {
  json ref = load_reference("chat_template_" + GetParam() + ".json");
  ChatTemplate t = ChatTemplate::from_model_dir(test::fixtures_dir() / "models" / GetParam());
  EXPECT_EQ(t.source(), ref["template_source"].get<std::string>());
  jinja::Dict expected_tokens = jinja::from_json(ref["special_tokens_map"]).as_dict();
  ASSERT_EQ(t.special_tokens().items.size(), expected_tokens.items.size());
  for (const auto& [k, v] : expected_tokens.items) {
    const jinja::Value* got = t.special_tokens().find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_EQ(got->str(), v.str()) << k;
  }
}

TEST_P(ChatTemplateModel, RendersAsTheProcessor) {
  json ref = load_reference("chat_template_" + GetParam() + ".json");
  ChatTemplate t = ChatTemplate::from_model_dir(test::fixtures_dir() / "models" / GetParam());
  ASSERT_GE(ref["cases"].size(), 15u);
  size_t single_turns = 0;
  for (const auto& c : ref["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ChatOptions options;
    options.add_generation_prompt = c["add_generation_prompt"];
    options.add_vision_id = c["add_vision_id"];
    const std::string expected = c["rendered"];
    EXPECT_EQ(t.render_json(c["messages"], options), expected);
    EXPECT_EQ(t.render(to_messages(c["messages"]), options), expected);
    if (c.contains("system_prompt")) {  // built as the engine builds one question
      ++single_turns;
      EXPECT_EQ(t.render(single_turn(c["system_prompt"], to_items(c["user"])), options), expected);
    }
  }
  EXPECT_GE(single_turns, 12u);
}

INSTANTIATE_TEST_SUITE_P(Models, ChatTemplateModel, ::testing::Values("tiny-a", "tiny-b"));

TEST(ChatTemplateLookup, FollowsTheProcessorsOrder) {
  json ref = load_reference("chat_template_lookup.json");
  ASSERT_GE(ref["cases"].size(), 10u);
  for (const auto& c : ref["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    auto dir = test::fixtures_dir() / "chat_template_lookup" / name;
    ASSERT_TRUE(std::filesystem::is_directory(dir));
    if (c.contains("error")) {
      EXPECT_THROW(ChatTemplate::from_model_dir(dir), Error) << "the processor said: " << c["error"];
    } else {
      EXPECT_EQ(ChatTemplate::from_model_dir(dir).source(), c["template"].get<std::string>());
    }
  }
}

TEST(ChatTemplateLookup, MissingTemplateSaysWhereItLooked) {
  auto dir = test::fixtures_dir() / "chat_template_lookup" / "nothing";
  try {
    ChatTemplate::from_model_dir(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("no chat template"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("chat_template.jinja"));
  }
  EXPECT_THROW(ChatTemplate::from_model_dir(test::fixtures_dir() / "no-such-model"), Error);
}

TEST(ChatTemplate, ErrorsNameTheTemplateFile) {
  ChatTemplate t("{% for m in messages %}{{ m.content | frobnicate }}{% endfor %}", "/models/x/chat_template.jinja");
  try {
    t.render(single_turn("", {ContentItem::of_text("hi")}), {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("/models/x/chat_template.jinja:1:"));
  }
}

}  // namespace
}  // namespace qwenvl::model
