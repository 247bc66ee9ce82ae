// POST /v1/chat/completions bodies into the engine's request parts (tools/server/chat_request.cpp):
// the shapes OpenAI's clients send, and every malformed or unsupported field refused with a 400
// that names it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat_request.h"

namespace {

using nlohmann::json;
using qwenvl::server::ApiError;
using qwenvl::server::ChatRequest;
using qwenvl::server::parse_chat_request;

const char* const kPngUri = "data:image/png;base64,iVBORw0KGgo=";  // the PNG signature's 8 bytes

json user(json content) { return {{"role", "user"}, {"content", std::move(content)}}; }

json body(json messages) { return {{"model", "m"}, {"messages", std::move(messages)}}; }

ChatRequest parse(const json& b) { return parse_chat_request(b.dump()); }

// The error a body gets (it must be one).
ApiError error_of(const std::string& text) {
  try {
    parse_chat_request(text);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << text;
  return {};
}
ApiError error_of(const json& b) { return error_of(b.dump()); }

TEST(ChatRequest, AStringQuestion) {
  const ChatRequest r = parse(body({user("Hello?")}));
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "Hello?");
  EXPECT_TRUE(r.images.empty());
  EXPECT_TRUE(r.history.empty());
  EXPECT_EQ(r.system_prompt, "");
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.sampling.max_new_tokens);
  EXPECT_FALSE(r.sampling.temperature);
}

TEST(ChatRequest, ImagesInOrderAndTextPartsJoined) {
  const json parts = {
      {{"type", "text"}, {"text", "Compare "}},
      {{"type", "image_url"}, {"image_url", {{"url", kPngUri}}}},
      {{"type", "text"}, {"text", "these."}},
      {{"type", "image_url"}, {"image_url", {{"url", "data:image/jpeg;base64,/9j/"}, {"detail", "low"}}}}};
  const ChatRequest r = parse(body({user(parts)}));
  EXPECT_EQ(r.prompt, "Compare these.");
  ASSERT_EQ(r.images.size(), 2u);
  EXPECT_EQ(r.images[0].media_type, "image/png");
  EXPECT_EQ(r.images[0].data, "\x89PNG\r\n\x1a\n");
  EXPECT_EQ(r.images[0].param, "messages[0].content[1].image_url");
  EXPECT_EQ(r.images[1].media_type, "image/jpeg");
  EXPECT_EQ(r.images[1].data, "\xff\xd8\xff");
}

TEST(ChatRequest, SystemAndEarlierTurnsBecomeTheHistory) {
  const ChatRequest r = parse(body({{{"role", "system"}, {"content", "Be brief."}},
                                    user("First?"),
                                    {{"role", "assistant"}, {"content", {{{"type", "text"}, {"text", "One."}}}}},
                                    user("Second?")}));
  EXPECT_EQ(r.system_prompt, "Be brief.");
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_EQ(r.history[0].user, "First?");
  EXPECT_EQ(r.history[0].assistant, "One.");
  EXPECT_EQ(r.prompt, "Second?");
  EXPECT_EQ(parse(body({{{"role", "developer"}, {"content", "Dev."}}, user("q")})).system_prompt, "Dev.");
}

TEST(ChatRequest, SamplingFieldsAndExtensions) {
  json b = body({user("q")});
  b.update({{"max_tokens", 7},
            {"temperature", 0},
            {"top_p", 0.9},
            {"seed", -1},
            {"stop", json::array({"a", "bc"})},
            {"n", 1},
            {"top_k", 20},
            {"min_p", 0.05},
            {"repetition_penalty", 1.05},
            {"stream", true},
            {"stream_options", {{"include_usage", true}}},
            {"return_token_ids", true},
            {"ignore_eos", true},
            {"user", "ignored"},
            {"presence_penalty", 0},
            {"logprobs", false},
            {"tool_choice", "none"},
            {"stop_token_ids", json::array()},
            {"response_format", {{"type", "text"}}}});
  const ChatRequest r = parse(b);
  EXPECT_EQ(r.sampling.max_new_tokens, 7);
  EXPECT_EQ(r.sampling.temperature, 0.0);
  EXPECT_EQ(r.sampling.top_p, 0.9);
  EXPECT_EQ(r.sampling.seed, ~uint64_t{0});
  EXPECT_EQ(r.sampling.stop_strings, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(r.sampling.top_k, 20);
  EXPECT_EQ(r.sampling.min_p, 0.05);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.05);
  EXPECT_TRUE(r.sampling.ignore_eos);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.return_token_ids);
}

// vLLM's mm_processor_kwargs: Qwen2.5-VL's min_pixels / max_pixels, for this request only.
TEST(ChatRequest, ProcessorKwargsSetThePixelBounds) {
  json b = body({user("q")});
  EXPECT_FALSE(parse(b).min_pixels);
  EXPECT_FALSE(parse(b).max_pixels);
  b["mm_processor_kwargs"] = {{"min_pixels", 3136}, {"max_pixels", 200704}};
  EXPECT_EQ(parse(b).min_pixels, 3136);
  EXPECT_EQ(parse(b).max_pixels, 200704);
  b["mm_processor_kwargs"] = {{"max_pixels", 1000}, {"min_pixels", nullptr}};
  EXPECT_FALSE(parse(b).min_pixels);
  EXPECT_EQ(parse(b).max_pixels, 1000);
}

TEST(ChatRequest, MaxCompletionTokensWinsAndNullsAreLeftOut) {
  json b = body({user("q")});
  b.update({{"max_tokens", 7}, {"max_completion_tokens", 9}, {"temperature", nullptr}, {"stop", "x"}, {"top_k", -1}});
  const ChatRequest r = parse(b);
  EXPECT_EQ(r.sampling.max_new_tokens, 9);
  EXPECT_FALSE(r.sampling.temperature);
  EXPECT_EQ(r.sampling.stop_strings, std::vector<std::string>{"x"});
  EXPECT_EQ(r.sampling.top_k, 0) << "vLLM's -1: every token";
}

TEST(ChatRequest, ConstraintsInOpenAIsAndVllmsForms) {
  const json schema = {{"type", "object"}, {"properties", {{"n", {{"type", "integer"}}}}}};
  json openai = body({user("q")});
  openai["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "count"}, {"schema", schema}}}};
  EXPECT_EQ(json::parse(parse(openai).sampling.json_schema), schema);
  json vllm = body({user("q")});
  vllm["structured_outputs"] = {{"choice", {"yes", "no, never"}}};
  EXPECT_EQ(parse(vllm).sampling.choices, (std::vector<std::string>{"yes", "no, never"}));
  json vllm_json = body({user("q")});
  vllm_json["structured_outputs"] = {{"json", schema}};
  EXPECT_EQ(json::parse(parse(vllm_json).sampling.json_schema), schema);
  json older = body({user("q")});
  older["guided_choice"] = {"a", "b"};
  EXPECT_EQ(parse(older).sampling.choices, (std::vector<std::string>{"a", "b"}));
  older.erase("guided_choice");
  older["guided_json"] = schema;
  EXPECT_EQ(json::parse(parse(older).sampling.json_schema), schema);
  EXPECT_TRUE(parse(body({user("q")})).sampling.choices.empty());
}

struct Bad {
  std::string name;
  json body;
  std::string param;  // the field the error names
  std::string says;   // part of its message
};

json with(json b, const json& fields) {
  b.update(fields);
  return b;
}

std::vector<Bad> bad_bodies() {
  const json ok = body({user("q")});
  json no_model = ok;
  no_model.erase("model");
  const json image = {{"type", "image_url"}, {"image_url", {{"url", kPngUri}}}};
  auto url = [](const std::string& u) {
    return user(json::array({{{"type", "image_url"}, {"image_url", {{"url", u}}}}}));
  };
  return {
      {"no_model", no_model, "model", "is required"},
      {"model_not_a_string", with(ok, {{"model", 3}}), "model", "must be a string"},
      {"no_messages", {{"model", "m"}}, "messages", "is required"},
      {"messages_not_an_array", with(ok, {{"messages", "hi"}}), "messages", "must be an array"},
      {"no_message", body(json::array()), "messages", "at least one"},
      {"message_not_an_object", body({"hi"}), "messages[0]", "must be an object"},
      {"no_role", body({{{"content", "q"}}}), "messages[0].role", "is required"},
      {"tool_role", body({{{"role", "tool"}, {"content", "q"}}}), "messages[0].role", "not supported"},
      {"no_content", body({{{"role", "user"}}}), "messages[0].content", "is required"},
      {"content_a_number", body({user(3)}), "messages[0].content", "must be a string or an array"},
      {"part_without_type", body({user({{{"text", "q"}}})}), "messages[0].content[0].type", "is required"},
      {"audio_part", body({user({{{"type", "input_audio"}}})}), "messages[0].content[0].type", "not supported"},
      {"text_part_a_number", body({user({{{"type", "text"}, {"text", 1}}})}), "messages[0].content[0].text",
       "must be a string"},
      {"image_url_a_string", body({user({{{"type", "image_url"}, {"image_url", kPngUri}}})}),
       "messages[0].content[0].image_url", "must be an object"},
      {"remote_image", body({url("https://example.com/cat.png")}), "messages[0].content[0].image_url.url",
       "remote image URLs are not fetched"},
      {"not_base64", body({url("data:image/png;base64,***")}), "messages[0].content[0].image_url.url",
       "not valid base64"},
      {"gif", body({url("data:image/gif;base64,R0lGODlh")}), "messages[0].content[0].image_url.url",
       "PNG or JPEG images only"},
      {"image_in_an_earlier_turn", body({user({image}), {{"role", "assistant"}, {"content", "a"}}, user("q")}),
       "messages[0].content[0]", "last user message only"},
      {"image_in_the_system_message", body({{{"role", "system"}, {"content", {image}}}, user("q")}),
       "messages[0].content[0]", "last user message only"},
      {"system_not_first", body({user("a"), {{"role", "system"}, {"content", "s"}}, user("q")}), "messages[1].role",
       "first only"},
      {"two_users", body({user("a"), user("b")}), "messages[1].role", "must alternate"},
      {"assistant_first", body({{{"role", "assistant"}, {"content", "a"}}, user("q")}), "messages[0].role",
       "must answer a user message"},
      {"ends_with_assistant", body({user("q"), {{"role", "assistant"}, {"content", "a"}}}), "messages[1].role",
       "last message must be the user's"},
      {"tool_calls",
       body({user("q"), {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", {{{"id", "1"}}}}}, user("r")}),
       "messages[1].tool_calls", "not supported"},
      {"n_two", with(ok, {{"n", 2}}), "n", "only n = 1"},
      {"max_tokens_zero", with(ok, {{"max_tokens", 0}}), "max_tokens", "at least 1"},
      {"max_tokens_a_string", with(ok, {{"max_tokens", "20"}}), "max_tokens", "must be an integer"},
      {"max_tokens_fractional", with(ok, {{"max_completion_tokens", 2.5}}), "max_completion_tokens",
       "must be an integer"},
      {"negative_temperature", with(ok, {{"temperature", -0.5}}), "temperature", ">= 0"},
      {"temperature_a_string", with(ok, {{"temperature", "hot"}}), "temperature", "must be a number"},
      {"top_p_zero", with(ok, {{"top_p", 0}}), "top_p", "(0, 1]"},
      {"top_k_below_minus_one", with(ok, {{"top_k", -2}}), "top_k", ">= -1"},
      {"min_p_above_one", with(ok, {{"min_p", 1.5}}), "min_p", "[0, 1]"},
      {"zero_penalty", with(ok, {{"repetition_penalty", 0}}), "repetition_penalty", "> 0"},
      {"seed_a_float", with(ok, {{"seed", 1.5}}), "seed", "must be an integer"},
      {"stop_a_number", with(ok, {{"stop", 3}}), "stop", "string or an array"},
      {"stop_list_of_numbers", with(ok, {{"stop", {1}}}), "stop[0]", "must be a string"},
      {"empty_stop", with(ok, {{"stop", ""}}), "stop", "must not be empty"},
      {"stream_a_string", with(ok, {{"stream", "yes"}}), "stream", "must be a boolean"},
      {"stream_options_without_stream", with(ok, {{"stream_options", {{"include_usage", true}}}}), "stream_options",
       "only allowed when stream is true"},
      {"logprobs", with(ok, {{"logprobs", true}}), "logprobs", "not supported"},
      {"top_logprobs", with(ok, {{"top_logprobs", 2}}), "top_logprobs", "not supported"},
      {"frequency_penalty", with(ok, {{"frequency_penalty", 0.5}}), "frequency_penalty", "not supported"},
      {"logit_bias", with(ok, {{"logit_bias", {{"42", 10}}}}), "logit_bias", "not supported"},
      {"stop_token_ids", with(ok, {{"stop_token_ids", {151643}}}), "stop_token_ids", "not supported"},
      {"tools", with(ok, {{"tools", {{{"type", "function"}}}}}), "tools", "not supported"},
      {"tool_choice", with(ok, {{"tool_choice", "auto"}}), "tool_choice", "not supported"},
      {"json_mode", with(ok, {{"response_format", {{"type", "json_object"}}}}), "response_format", "only"},
      {"json_schema_without_schema", with(ok, {{"response_format", {{"type", "json_schema"}, {"json_schema", json::object()}}}}),
       "response_format.json_schema.schema", "is required"},
      {"choice_empty", with(ok, {{"structured_outputs", {{"choice", json::array()}}}}), "structured_outputs.choice",
       "non-empty array"},
      {"choice_a_number", with(ok, {{"structured_outputs", {{"choice", {"a", 2}}}}}), "structured_outputs.choice[1]",
       "non-empty string"},
      {"structured_regex", with(ok, {{"structured_outputs", {{"regex", "a+"}}}}), "structured_outputs.regex", "not supported"},
      {"two_constraints", with(ok, {{"guided_choice", {"a"}}, {"guided_json", {{"type", "boolean"}}}}), "guided_json",
       "only one constraint"},
      {"return_token_ids_a_number", with(ok, {{"return_token_ids", 1}}), "return_token_ids", "must be a boolean"},
      {"processor_kwargs_a_list", with(ok, {{"mm_processor_kwargs", {1}}}), "mm_processor_kwargs", "must be an object"},
      {"processor_kwargs_fps", with(ok, {{"mm_processor_kwargs", {{"fps", 2}}}}), "mm_processor_kwargs.fps",
       "images only"},
      {"processor_kwargs_unknown", with(ok, {{"mm_processor_kwargs", {{"do_resize", false}}}}),
       "mm_processor_kwargs.do_resize", "not supported (min_pixels and max_pixels are)"},
      {"min_pixels_zero", with(ok, {{"mm_processor_kwargs", {{"min_pixels", 0}}}}), "mm_processor_kwargs.min_pixels",
       "at least 1"},
      {"max_pixels_a_float", with(ok, {{"mm_processor_kwargs", {{"max_pixels", 1.5}}}}),
       "mm_processor_kwargs.max_pixels", "must be an integer"},
      {"min_pixels_above_max", with(ok, {{"mm_processor_kwargs", {{"min_pixels", 5000}, {"max_pixels", 4000}}}}),
       "mm_processor_kwargs.min_pixels", "above max_pixels"},
  };
}

class BadBody : public ::testing::TestWithParam<Bad> {};

TEST_P(BadBody, Is400NamingTheField) {
  const ApiError e = error_of(GetParam().body);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, GetParam().param) << e.message;
  EXPECT_NE(e.message.find(GetParam().says), std::string::npos) << e.message;
  EXPECT_EQ(e.message.rfind(GetParam().param + ": ", 0), 0u) << "the message starts with the field: " << e.message;
}

INSTANTIATE_TEST_SUITE_P(Fields, BadBody, ::testing::ValuesIn(bad_bodies()),
                         [](const auto& info) { return info.param.name; });

TEST(ChatRequest, MalformedJsonAndOtherRoots) {
  // 1e999: nlohmann's out_of_range, not a parse_error (found by fuzz_chat_request)
  for (const char* text : {"", "{", "{\"model\": \"m\",}", "nul", "{\"a\": \"\xff\"}", "{\"max_tokens\": 1e999}"}) {
    const ApiError e = error_of(std::string(text));
    EXPECT_EQ(e.status, 400) << text;
    EXPECT_EQ(e.code, "invalid_json") << text;
    EXPECT_NE(e.message.find("not valid JSON"), std::string::npos) << e.message;
  }
  for (const char* text : {"[]", "3", "\"hi\"", "null"}) {
    const ApiError e = error_of(std::string(text));
    EXPECT_EQ(e.message, "the body must be a JSON object") << text;
  }
}

TEST(ApiError, IsOpenAisErrorObject) {
  const ApiError e = qwenvl::server::invalid_request("n: only n = 1 is supported", "n");
  EXPECT_EQ(e.body(), json::parse(R"({"error": {"message": "n: only n = 1 is supported",
      "type": "invalid_request_error", "param": "n", "code": null}})"));
}

}  // namespace
