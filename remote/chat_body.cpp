// Request -> chat-completions JSON.
#include "chat_body.h"

#include <stdexcept>

namespace qwenvl::remote {

using nlohmann::json;

json chat_body(const Request& request, const std::string& model, const std::vector<std::string>& image_urls) {
  json messages = json::array();
  if (!request.system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", request.system_prompt}});
  for (const Turn& turn : request.history) {
    messages.push_back({{"role", "user"}, {"content", turn.user}});
    messages.push_back({{"role", "assistant"}, {"content", turn.assistant}});
  }
  json content = json::array();
  for (const std::string& url : image_urls) content.push_back({{"type", "image_url"}, {"image_url", {{"url", url}}}});
  content.push_back({{"type", "text"}, {"text", request.prompt}});
  messages.push_back({{"role", "user"}, {"content", std::move(content)}});

  json body = {{"model", model},
               {"messages", std::move(messages)},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"return_token_ids", true}};
  const SamplingParams& s = request.sampling;
  // Unset fields stay out, so that the server's own defaults (the model's generation_config.json
  // for vLLM and qwenvl-server) apply, as they do for the local engine.
  if (s.max_new_tokens) body["max_tokens"] = *s.max_new_tokens;
  if (s.temperature) body["temperature"] = *s.temperature;
  if (s.top_k) body["top_k"] = *s.top_k;
  if (s.top_p) body["top_p"] = *s.top_p;
  if (s.min_p) body["min_p"] = *s.min_p;
  if (s.repetition_penalty) body["repetition_penalty"] = *s.repetition_penalty;
  if (s.seed) body["seed"] = static_cast<int64_t>(*s.seed);  // OpenAI's seed is signed: the same 64 bits
  if (!s.stop_strings.empty()) body["stop"] = s.stop_strings;
  if (s.ignore_eos) body["ignore_eos"] = true;
  // Constrained answers in the forms servers read: OpenAI's response_format for a schema (vLLM,
  // llama-server, qwenvl-server), vLLM's structured_outputs for choices (qwenvl-server too;
  // llama-server has none, so remote_engine.cpp checks every answer against its choices).
  if (!s.json_schema.empty() && !s.choices.empty())
    throw std::invalid_argument("json_schema and choices are both set: set one of them");
  if (!s.json_schema.empty()) {
    json schema = json::parse(s.json_schema, nullptr, false);
    if (schema.is_discarded() || !schema.is_object()) throw std::invalid_argument("json_schema is not a JSON object");
    body["response_format"] = {{"type", "json_schema"},
                               {"json_schema", {{"name", "answer"}, {"strict", true}, {"schema", std::move(schema)}}}};
  }
  if (!s.choices.empty()) body["structured_outputs"] = {{"choice", s.choices}};
  // vLLM's per-request processor arguments, which qwenvl-server reads too.
  if (request.min_pixels || request.max_pixels) {
    json kwargs = json::object();
    if (request.min_pixels) kwargs["min_pixels"] = *request.min_pixels;
    if (request.max_pixels) kwargs["max_pixels"] = *request.max_pixels;
    body["mm_processor_kwargs"] = std::move(kwargs);
  }
  return body;
}

}  // namespace qwenvl::remote
