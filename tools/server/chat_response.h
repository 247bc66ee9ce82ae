// What POST /v1/chat/completions answers, in OpenAI's shapes: the chat.completion object, and for
// stream=true the chat.completion.chunk events of a server-sent-event stream (the role first, then
// the content as it comes, a last chunk with the finish reason, optionally one with the usage, then
// "data: [DONE]"). Each choice carries vLLM's stop_reason beside finish_reason. With return_token_ids, vLLM's extension: each choice carries "token_ids", the
// generated ids (EOS included where generation hit it); in a stream they all ride on the chunk with
// the finish reason (the engine streams text, not ids), so that the chunks' lists joined are the answer's.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "qwenvl/engine.h"

namespace qwenvl::server {

struct CompletionHeader {
  std::string id;       // "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;    // the served model name
};

// "chatcmpl-" and 24 random hex digits.
std::string new_completion_id();

// OpenAI's finish reason for an answered request: "length", else "stop" (EOS or a stop string).
const char* finish_reason(const Result& result);
// vLLM's stop_reason beside it: the stop string that ended the answer, else null (EOS, length).
nlohmann::json stop_reason(const Result& result);

nlohmann::json usage(const Result& result);

// The whole answer (stream=false).
nlohmann::json completion(const CompletionHeader& header, const Result& result, bool token_ids);

// Stream chunks. `with_usage_field`: stream_options.include_usage was set, so every chunk says
// "usage": null until the last one gives it, as OpenAI's do.
nlohmann::json role_chunk(const CompletionHeader& header, bool with_usage_field);
nlohmann::json content_chunk(const CompletionHeader& header, const std::string& text, bool with_usage_field);
nlohmann::json finish_chunk(const CompletionHeader& header, const Result& result, bool token_ids,
                            bool with_usage_field);
nlohmann::json usage_chunk(const CompletionHeader& header, const Result& result);

// One server-sent event carrying `data` (invalid UTF-8 in text replaced, as everywhere in our JSON).
std::string event(const nlohmann::json& data);
inline constexpr const char kDoneEvent[] = "data: [DONE]\n\n";

// JSON text for a response body, invalid UTF-8 replaced by U+FFFD.
std::string dump(const nlohmann::json& value);

}  // namespace qwenvl::server
