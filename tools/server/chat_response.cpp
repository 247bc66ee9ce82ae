// OpenAI's chat.completion and chat.completion.chunk objects.
#include "chat_response.h"

#include <random>

namespace qwenvl::server {

namespace {

using nlohmann::json;

json chunk(const CompletionHeader& h, json choices, bool with_usage_field) {
  json out = {{"id", h.id},       {"object", "chat.completion.chunk"}, {"created", h.created},
              {"model", h.model}, {"system_fingerprint", nullptr},     {"choices", std::move(choices)}};
  if (with_usage_field) out["usage"] = nullptr;
  return out;
}

json delta_choice(json delta, json reason, json stop = nullptr) {
  return json::array({{{"index", 0},
                       {"delta", std::move(delta)},
                       {"logprobs", nullptr},
                       {"finish_reason", std::move(reason)},
                       {"stop_reason", std::move(stop)}}});
}

}  // namespace

std::string new_completion_id() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "chatcmpl-";
  for (int i = 0; i < 24; ++i) id += kHex[generator() & 0xF];
  return id;
}

const char* finish_reason(const Result& result) { return result.finish_reason == "length" ? "length" : "stop"; }

json stop_reason(const Result& result) {
  if (result.finish_reason == "stop_string") return result.stop_string;
  return nullptr;
}

json usage(const Result& result) {
  const auto completion_tokens = static_cast<int64_t>(result.token_ids.size());
  return {{"prompt_tokens", result.prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", result.prompt_tokens + completion_tokens}};
}

json completion(const CompletionHeader& h, const Result& result, bool token_ids) {
  json choice = {{"index", 0},
                 {"message", {{"role", "assistant"}, {"content", result.text}, {"refusal", nullptr}}},
                 {"logprobs", nullptr},
                 {"finish_reason", finish_reason(result)},
                 {"stop_reason", stop_reason(result)}};
  if (token_ids) choice["token_ids"] = result.token_ids;
  return {{"id", h.id},
          {"object", "chat.completion"},
          {"created", h.created},
          {"model", h.model},
          {"system_fingerprint", nullptr},
          {"choices", json::array({std::move(choice)})},
          {"usage", usage(result)}};
}

json role_chunk(const CompletionHeader& h, bool with_usage_field) {
  return chunk(h, delta_choice({{"role", "assistant"}, {"content", ""}}, nullptr), with_usage_field);
}

json content_chunk(const CompletionHeader& h, const std::string& text, bool with_usage_field) {
  return chunk(h, delta_choice({{"content", text}}, nullptr), with_usage_field);
}

json finish_chunk(const CompletionHeader& h, const Result& result, bool token_ids, bool with_usage_field) {
  json choices = delta_choice(json::object(), finish_reason(result), stop_reason(result));
  if (token_ids) choices[0]["token_ids"] = result.token_ids;
  return chunk(h, std::move(choices), with_usage_field);
}

json usage_chunk(const CompletionHeader& h, const Result& result) {
  json out = chunk(h, json::array(), false);
  out["usage"] = usage(result);
  return out;
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string event(const json& data) { return "data: " + dump(data) + "\n\n"; }

}  // namespace qwenvl::server
