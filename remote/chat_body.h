// The body of POST {base}/chat/completions for one engine Request: messages (system, earlier turns
// as text, then the question with its images first, as qwenvl-cli and qwenvl-server order them)
// and every SamplingParams field, the extensions under vLLM's names. Pure: the images come
// already encoded as data URIs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::remote {

// image_urls: the request's images (or its clip's frames), in order. Always streamed, with the usage
// in a last chunk and the generated token ids asked for (return_token_ids; servers without it ignore it).
// A schema goes as OpenAI's response_format, choices as vLLM's structured_outputs. Throws
// std::invalid_argument for a json_schema that is not a JSON object, or both set.
nlohmann::json chat_body(const Request& request, const std::string& model, const std::vector<std::string>& image_urls);

}  // namespace qwenvl::remote
