// The body of POST /v1/chat/completions turned into what the engine is asked: pure (no engine, no
// decoding of images beyond their base64), so that it can be fuzzed (tests/fuzz/fuzz_chat_request.cpp).
//
// The conversation must have the shape the engine renders: an optional system (or developer) message
// first, then user and assistant messages alternating, ending with a user message. Only the last user
// message may carry images (earlier turns travel as text: Request::history); its images go before its
// text, as qwenvl-cli puts them, and its text parts are joined as the chat template joins them (with
// nothing between). Any other shape, and any field the engine cannot honour, is refused with an
// ApiError (400) that names the field, never ignored in silence.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api_error.h"
#include "qwenvl/engine.h"

namespace qwenvl::server {

struct EncodedImage {
  std::string param;       // where it was in the request, e.g. "messages[1].content[0].image_url"
  std::string media_type;  // as the data URI says: "image/png" or "image/jpeg"
  std::string data;        // the image file's bytes
};

struct ChatRequest {
  std::string model;
  std::string system_prompt;  // empty: the chat template's default
  std::vector<Turn> history;
  std::string prompt;
  std::vector<EncodedImage> images;  // in prompt order
  SamplingParams sampling;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage: a last chunk with the usage
  bool return_token_ids = false;  // vLLM's extension: each choice's generated ids as "token_ids"
  // vLLM's mm_processor_kwargs: this request's resizing bounds (at least 1, min <= max); unset: the server's.
  std::optional<int64_t> min_pixels, max_pixels;
};

// Throws ApiError (400, invalid_request_error) naming the field at fault.
ChatRequest parse_chat_request(std::string_view body);

}  // namespace qwenvl::server
