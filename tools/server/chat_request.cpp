// OpenAI's chat-completions request, field by field, into the engine's Request parts.
#include "chat_request.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "data_uri.h"

namespace qwenvl::server {

namespace {

using nlohmann::json;

// A field of `object`, or nullptr when it is absent or null (the clients send null for "not given").
const json* field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void fail(const std::string& param, const std::string& message) {
  throw invalid_request(param + ": " + message, param);
}

bool boolean(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail(name, "must be a boolean");
  return v->get<bool>();
}

std::optional<double> number(const json& body, const char* name) {
  const json* v = field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) fail(name, "must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d)) fail(name, "must be finite");
  return d;
}

// `param` names the field in errors where it is not `name` (a field of a nested object).
std::optional<int64_t> integer(const json& body, const char* name, const std::string& param = {}) {
  const std::string& at = param.empty() ? std::string(name) : param;
  const json* v = field(body, name);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(at, "is too large");
    return static_cast<int64_t>(v->get<uint64_t>());
  }
  if (!v->is_number_integer()) fail(at, "must be an integer");
  return v->get<int64_t>();
}

std::string string_field(const json& object, const char* name, const std::string& param) {
  const json* v = field(object, name);
  if (v == nullptr) fail(param, "is required");
  if (!v->is_string()) fail(param, "must be a string");
  return v->get<std::string>();
}

// Fields that would change the answer and that the engine cannot honour: refused when they ask for
// something, accepted at their "off" value.
void refuse_unsupported(const json& body) {
  if (boolean(body, "logprobs", false)) fail("logprobs", "log probabilities are not supported");
  if (const auto top = integer(body, "top_logprobs"); top && *top != 0)
    fail("top_logprobs", "log probabilities are not supported");
  for (const char* name : {"presence_penalty", "frequency_penalty"})
    if (const auto v = number(body, name); v && *v != 0) fail(name, "is not supported (repetition_penalty is)");
  if (const json* bias = field(body, "logit_bias"); bias != nullptr && !bias->empty())
    fail("logit_bias", "is not supported");
  if (const json* ids = field(body, "stop_token_ids"); ids != nullptr && !ids->empty())  // vLLM's
    fail("stop_token_ids", "is not supported (stop strings are)");
  for (const char* name : {"tools", "functions"})
    if (const json* v = field(body, name); v != nullptr && !v->empty()) fail(name, "tool calls are not supported");
  if (const json* choice = field(body, "tool_choice"); choice != nullptr && *choice != "none")
    fail("tool_choice", "tool calls are not supported");
}

// The choices of vLLM's structured_outputs.choice (or the older guided_choice): non-empty strings.
std::vector<std::string> choice_list(const json& value, const std::string& param) {
  if (!value.is_array() || value.empty()) fail(param, "must be a non-empty array of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string() || value[i].get<std::string>().empty())
      fail(param + "[" + std::to_string(i) + "]", "must be a non-empty string");
    out.push_back(value[i].get<std::string>());
  }
  return out;
}

std::string schema_text(const json& value, const std::string& param) {
  if (!value.is_object()) fail(param, "must be a JSON schema object");
  return value.dump();
}

// Constrained decoding in the forms clients send it: OpenAI's response_format {"type": "json_schema",
// "json_schema": {"schema": ...}}, vLLM's structured_outputs {"choice": [...]} or {"json": ...}, and
// vLLM's older guided_choice / guided_json. One constraint per request; the engine checks the schema.
void parse_constraint(const json& body, SamplingParams& s) {
  auto set_schema = [&](const json& value, const std::string& param) {
    if (!s.json_schema.empty() || !s.choices.empty()) fail(param, "only one constraint per request");
    s.json_schema = schema_text(value, param);
  };
  auto set_choices = [&](const json& value, const std::string& param) {
    if (!s.json_schema.empty() || !s.choices.empty()) fail(param, "only one constraint per request");
    s.choices = choice_list(value, param);
  };
  if (const json* format = field(body, "response_format"); format != nullptr) {
    const json* type = format->is_object() ? field(*format, "type") : nullptr;
    if (type != nullptr && *type == "json_schema") {
      const json* spec = field(*format, "json_schema");
      const json* schema = spec != nullptr && spec->is_object() ? field(*spec, "schema") : nullptr;
      if (schema == nullptr) fail("response_format.json_schema.schema", "is required");
      set_schema(*schema, "response_format.json_schema.schema");
    } else if (type == nullptr || *type != "text") {
      fail("response_format", "only {\"type\": \"text\"} and {\"type\": \"json_schema\"} are supported");
    }
  }
  if (const json* outputs = field(body, "structured_outputs"); outputs != nullptr) {
    if (!outputs->is_object()) fail("structured_outputs", "must be an object");
    for (const auto& [key, value] : outputs->items()) {
      if (key == "choice") set_choices(value, "structured_outputs.choice");
      else if (key == "json") set_schema(value, "structured_outputs.json");
      else fail("structured_outputs." + key, "is not supported (choice and json are)");
    }
  }
  if (const json* choice = field(body, "guided_choice")) set_choices(*choice, "guided_choice");
  if (const json* schema = field(body, "guided_json")) set_schema(*schema, "guided_json");
}

// vLLM's per-request processor arguments. Qwen2.5-VL's image processor takes min_pixels and
// max_pixels; fps samples videos, which this server does not take; any other key is refused by name.
void parse_processor_kwargs(const json& body, ChatRequest& out) {
  const json* kwargs = field(body, "mm_processor_kwargs");
  if (kwargs == nullptr) return;
  if (!kwargs->is_object()) fail("mm_processor_kwargs", "must be an object");
  for (const auto& [key, value] : kwargs->items()) {
    const std::string param = "mm_processor_kwargs." + key;
    if (key == "fps") fail(param, "samples video frames, and this server takes images only");
    if (key != "min_pixels" && key != "max_pixels") fail(param, "is not supported (min_pixels and max_pixels are)");
    const std::optional<int64_t> pixels = integer(*kwargs, key.c_str(), param);
    if (pixels && *pixels < 1) fail(param, "must be at least 1");
    (key == "min_pixels" ? out.min_pixels : out.max_pixels) = pixels;
  }
  if (out.min_pixels && out.max_pixels && *out.min_pixels > *out.max_pixels)
    fail("mm_processor_kwargs.min_pixels", "is above max_pixels");
}

// One image_url part: a PNG or JPEG data URI. Remote URLs are not fetched.
EncodedImage image_part(const json& part, const std::string& param) {
  const json* image_url = field(part, "image_url");
  if (image_url == nullptr) fail(param + ".image_url", "is required");
  if (!image_url->is_object()) fail(param + ".image_url", "must be an object with a url");
  const std::string url = string_field(*image_url, "url", param + ".image_url.url");
  const std::string scheme = url.substr(0, url.find(':'));
  if (scheme == "http" || scheme == "https")
    fail(param + ".image_url.url",
         "remote image URLs are not fetched: send the image inline as a data URI (data:image/png;base64,...)");
  std::string why;
  std::optional<DataUri> uri = parse_data_uri(url, &why);
  if (!uri) fail(param + ".image_url.url", why + " (expected data:image/png;base64,... or data:image/jpeg;base64,...)");
  if (uri->media_type != "image/png" && uri->media_type != "image/jpeg" && uri->media_type != "image/jpg")
    fail(param + ".image_url.url", "media type '" + uri->media_type + "' is not accepted: PNG or JPEG images only");
  return EncodedImage{param + ".image_url", uri->media_type, std::move(uri->data)};
}

// A message's content as text; image parts go to *images when given, else are refused.
std::string content_text(const json& message, const std::string& param, std::vector<EncodedImage>* images) {
  const json* content = field(message, "content");
  if (content == nullptr) fail(param + ".content", "is required");
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) fail(param + ".content", "must be a string or an array of content parts");
  std::string text;
  for (size_t i = 0; i < content->size(); ++i) {
    const json& part = (*content)[i];
    const std::string part_param = param + ".content[" + std::to_string(i) + "]";
    if (!part.is_object()) fail(part_param, "must be an object");
    const std::string type = string_field(part, "type", part_param + ".type");
    if (type == "text") {
      text += string_field(part, "text", part_param + ".text");
    } else if (type == "image_url") {
      if (images == nullptr)
        fail(part_param, "images are accepted in the last user message only (earlier turns are sent as text)");
      images->push_back(image_part(part, part_param));
    } else {
      fail(part_param + ".type", "content part type '" + type + "' is not supported (text and image_url are)");
    }
  }
  return text;
}

void parse_messages(const json& body, ChatRequest& out) {
  const json* messages = field(body, "messages");
  if (messages == nullptr) fail("messages", "is required");
  if (!messages->is_array()) fail("messages", "must be an array");
  if (messages->empty()) fail("messages", "must hold at least one message");
  std::optional<std::string> pending_user;  // a user turn waiting for its assistant answer
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& message = (*messages)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) fail(param, "must be an object");
    const std::string role = string_field(message, "role", param + ".role");
    const bool last = i + 1 == messages->size();
    if (role == "system" || role == "developer") {
      if (i != 0) fail(param + ".role", "a system message is accepted first only");
      out.system_prompt = content_text(message, param, nullptr);
    } else if (role == "user") {
      if (pending_user) fail(param + ".role", "two user messages in a row: user and assistant messages must alternate");
      if (last) {
        out.prompt = content_text(message, param, &out.images);
      } else {
        pending_user = content_text(message, param, nullptr);
      }
    } else if (role == "assistant") {
      if (!pending_user) fail(param + ".role", "an assistant message must answer a user message");
      if (const json* calls = field(message, "tool_calls"); calls != nullptr && !calls->empty())
        fail(param + ".tool_calls", "tool calls are not supported");
      out.history.push_back(Turn{std::move(*pending_user), content_text(message, param, nullptr)});
      pending_user.reset();
    } else {
      fail(param + ".role", "role '" + role + "' is not supported (system, developer, user and assistant are)");
    }
    if (last && role != "user") fail(param + ".role", "the last message must be the user's");
  }
}

void parse_sampling(const json& body, SamplingParams& s) {
  // max_completion_tokens is OpenAI's newer name; it wins where both are given.
  std::optional<int64_t> max_tokens = integer(body, "max_completion_tokens");
  const char* max_name = "max_completion_tokens";
  if (!max_tokens) {
    max_tokens = integer(body, "max_tokens");
    max_name = "max_tokens";
  }
  if (max_tokens) {
    if (*max_tokens < 1) fail(max_name, "must be at least 1");
    s.max_new_tokens = static_cast<int>(std::min<int64_t>(*max_tokens, std::numeric_limits<int>::max()));
  }
  if (const auto t = number(body, "temperature")) {
    if (*t < 0) fail("temperature", "must be >= 0");
    s.temperature = *t;
  }
  if (const auto p = number(body, "top_p")) {
    if (!(*p > 0 && *p <= 1)) fail("top_p", "must be in (0, 1]");
    s.top_p = *p;
  }
  if (const auto k = integer(body, "top_k")) {  // vLLM and llama-server: 0 or -1 keep every token
    if (*k < -1) fail("top_k", "must be >= -1 (-1 or 0: every token)");
    s.top_k = static_cast<int>(std::min<int64_t>(std::max<int64_t>(*k, 0), std::numeric_limits<int>::max()));
  }
  if (const auto p = number(body, "min_p")) {
    if (!(*p >= 0 && *p <= 1)) fail("min_p", "must be in [0, 1]");
    s.min_p = *p;
  }
  if (const auto r = number(body, "repetition_penalty")) {
    if (!(*r > 0)) fail("repetition_penalty", "must be > 0");
    s.repetition_penalty = *r;
  }
  if (const json* seed = field(body, "seed")) {  // OpenAI's seeds are signed 64-bit: kept bit for bit
    if (seed->is_number_unsigned())
      s.seed = seed->get<uint64_t>();
    else if (seed->is_number_integer())
      s.seed = static_cast<uint64_t>(seed->get<int64_t>());
    else
      fail("seed", "must be an integer");
  }
  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      s.stop_strings.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (size_t i = 0; i < stop->size(); ++i) {
        if (!(*stop)[i].is_string()) fail("stop[" + std::to_string(i) + "]", "must be a string");
        s.stop_strings.push_back((*stop)[i].get<std::string>());
      }
    } else {
      fail("stop", "must be a string or an array of strings");
    }
    for (const auto& text : s.stop_strings)
      if (text.empty()) fail("stop", "stop strings must not be empty");
  }
  s.ignore_eos = boolean(body, "ignore_eos", false);  // vLLM's extension, for benchmarks
  parse_constraint(body, s);
}

}  // namespace

ChatRequest parse_chat_request(std::string_view body) {
  json request;
  try {
    request = json::parse(body);
  } catch (const json::exception& e) {  // a parse error, or a number past a double (out_of_range)
    throw invalid_request(std::string("the body is not valid JSON: ") + e.what(), {}, "invalid_json");
  }
  if (!request.is_object()) throw invalid_request("the body must be a JSON object", {}, "invalid_json");

  ChatRequest out;
  out.model = string_field(request, "model", "model");
  parse_messages(request, out);
  refuse_unsupported(request);
  if (const auto n = integer(request, "n"); n && *n != 1) fail("n", "only n = 1 is supported");
  parse_sampling(request, out.sampling);
  out.stream = boolean(request, "stream", false);
  if (const json* options = field(request, "stream_options")) {
    if (!out.stream) fail("stream_options", "is only allowed when stream is true");
    if (!options->is_object()) fail("stream_options", "must be an object");
    out.include_usage = boolean(*options, "include_usage", false);
  }
  out.return_token_ids = boolean(request, "return_token_ids", false);
  parse_processor_kwargs(request, out);
  return out;
}

}  // namespace qwenvl::server
