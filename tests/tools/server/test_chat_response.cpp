// The shapes qwenvl-server answers in (tools/server/chat_response.cpp): OpenAI's chat.completion and
// chat.completion.chunk objects with the fields the official clients read, and vLLM's token_ids.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "chat_response.h"

namespace {

using nlohmann::json;
namespace s = qwenvl::server;

qwenvl::Result answered(const std::string& text, std::vector<int32_t> ids, const std::string& reason) {
  qwenvl::Result r;
  r.status = qwenvl::Status::kAnswered;
  r.text = text;
  r.token_ids = std::move(ids);
  r.finish_reason = reason;
  r.prompt_tokens = 11;
  return r;
}

const s::CompletionHeader kHeader{"chatcmpl-1", 1700000000, "tiny"};

TEST(ChatResponse, CompletionObject) {
  const json c = s::completion(kHeader, answered("Hi.", {5, 6, 7}, "eos"), false);
  EXPECT_EQ(c.at("id"), "chatcmpl-1");
  EXPECT_EQ(c.at("object"), "chat.completion");
  EXPECT_EQ(c.at("created"), 1700000000);
  EXPECT_EQ(c.at("model"), "tiny");
  ASSERT_EQ(c.at("choices").size(), 1u);
  const json& choice = c.at("choices")[0];
  EXPECT_EQ(choice.at("index"), 0);
  EXPECT_EQ(choice.at("message").at("role"), "assistant");
  EXPECT_EQ(choice.at("message").at("content"), "Hi.");
  EXPECT_EQ(choice.at("finish_reason"), "stop");
  EXPECT_FALSE(choice.contains("token_ids"));
  EXPECT_EQ(c.at("usage"), json::parse(R"({"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14})"));
}

TEST(ChatResponse, FinishReasonsAndTokenIds) {
  EXPECT_STREQ(s::finish_reason(answered("", {1}, "length")), "length");
  EXPECT_STREQ(s::finish_reason(answered("", {1}, "stop_string")), "stop");
  EXPECT_STREQ(s::finish_reason(answered("", {1}, "eos")), "stop");
  const json c = s::completion(kHeader, answered("a", {9, 8}, "length"), true);
  EXPECT_EQ(c.at("choices")[0].at("token_ids"), json::array({9, 8}));
}

// vLLM's stop_reason: the stop string that matched, null for EOS and length; streamed and not.
TEST(ChatResponse, StopReasonNamesTheStopString) {
  qwenvl::Result stopped = answered("Two", {1, 2}, "stop_string");
  stopped.stop_string = " cats";
  const json c = s::completion(kHeader, stopped, false);
  EXPECT_EQ(c.at("choices")[0].at("finish_reason"), "stop");
  EXPECT_EQ(c.at("choices")[0].at("stop_reason"), " cats");
  EXPECT_EQ(s::finish_chunk(kHeader, stopped, false, false).at("choices")[0].at("stop_reason"), " cats");
  for (const char* reason : {"eos", "length"}) {
    EXPECT_TRUE(s::completion(kHeader, answered("a", {9}, reason), false).at("choices")[0].at("stop_reason").is_null());
    EXPECT_TRUE(s::finish_chunk(kHeader, answered("a", {9}, reason), false, false).at("choices")[0].at("stop_reason").is_null());
  }
  EXPECT_TRUE(s::content_chunk(kHeader, "lo", false).at("choices")[0].at("stop_reason").is_null());
}

TEST(ChatResponse, StreamChunks) {
  const json role = s::role_chunk(kHeader, false);
  EXPECT_EQ(role.at("object"), "chat.completion.chunk");
  EXPECT_EQ(role.at("id"), "chatcmpl-1");
  EXPECT_EQ(role.at("choices")[0].at("delta"), json::parse(R"({"role": "assistant", "content": ""})"));
  EXPECT_TRUE(role.at("choices")[0].at("finish_reason").is_null());
  EXPECT_FALSE(role.contains("usage"));
  EXPECT_EQ(s::content_chunk(kHeader, "lo", false).at("choices")[0].at("delta"), json::parse(R"({"content": "lo"})"));
  const json finish = s::finish_chunk(kHeader, answered("x", {3, 4}, "length"), true, true);
  EXPECT_EQ(finish.at("choices")[0].at("finish_reason"), "length");
  EXPECT_EQ(finish.at("choices")[0].at("delta"), json::object());
  EXPECT_EQ(finish.at("choices")[0].at("token_ids"), json::array({3, 4}));
  EXPECT_TRUE(finish.at("usage").is_null()) << "include_usage: null until the usage chunk";
  const json usage = s::usage_chunk(kHeader, answered("x", {3, 4}, "length"));
  EXPECT_EQ(usage.at("choices"), json::array());
  EXPECT_EQ(usage.at("usage").at("completion_tokens"), 2);
}

TEST(ChatResponse, EventsAreServerSentEventLines) {
  EXPECT_EQ(s::event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_STREQ(s::kDoneEvent, "data: [DONE]\n\n");
  EXPECT_EQ(s::event(json{{"t", std::string("\xff")}}), "data: {\"t\":\"\xEF\xBF\xBD\"}\n\n")
      << "invalid UTF-8 replaced";
}

TEST(ChatResponse, CompletionIdsAreFreshAndShaped) {
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    const std::string id = s::new_completion_id();
    EXPECT_EQ(id.rfind("chatcmpl-", 0), 0u);
    EXPECT_EQ(id.size(), 9u + 24u);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 100u);
}

}  // namespace
