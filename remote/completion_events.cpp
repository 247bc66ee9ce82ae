// Server-sent events (the WHATWG event-stream rules that servers use: lines ended by LF or CRLF,
// `data:` lines joined with LF, a blank line ends an event, `:` comments) and the chunks they carry.
#include "completion_events.h"

namespace qwenvl::remote {

using nlohmann::json;

namespace {

std::string error_message(const json& data) {
  if (data.contains("error")) {
    const json& e = data["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    return e.is_string() ? e.get<std::string>() : e.dump();
  }
  const auto object = data.find("object");
  if (object != data.end() && object->is_string() && *object == "error")  // vLLM's ErrorResponse
    return data.contains("message") && data["message"].is_string() ? data["message"].get<std::string>() : data.dump();
  return {};
}

// OpenAI's "stop" says only that the model stopped. vLLM's stop_reason names the stop string (a
// string), or the stop token (a number: vLLM lists the model's other end ids of generation_config.json
// as stop tokens, end of sequence to us), and is null or absent for the end-of-sequence token.
void read_finish(const json& choice, CompletionSoFar& out) {
  const auto reason = choice.find("finish_reason");
  if (reason == choice.end() || !reason->is_string()) return;
  const std::string r = reason->get<std::string>();
  out.finish_reason = r == "stop" ? "eos" : r;
  const auto stop = choice.find("stop_reason");
  if (r == "stop" && stop != choice.end() && stop->is_string()) {
    out.finish_reason = "stop_string";
    out.stop_string = stop->get<std::string>();
  }
}

// llama-server started with --verbose adds its own result as `__verbose`: stop_type "word" and the
// stopping_word when a stop string ended the answer (its OpenAI fields say only "stop").
std::optional<std::string> llama_stopping_word(const json& data) {
  const auto verbose = data.find("__verbose");
  if (verbose == data.end() || !verbose->is_object()) return std::nullopt;
  const auto type = verbose->find("stop_type");
  const auto word = verbose->find("stopping_word");
  if (type == verbose->end() || *type != "word" || word == verbose->end() || !word->is_string()) return std::nullopt;
  return word->get<std::string>();
}

void settle_stop(const std::optional<std::string>& stopping_word, CompletionSoFar& out) {
  if (out.finish_reason != "eos" || !stopping_word) return;
  out.finish_reason = "stop_string";
  out.stop_string = *stopping_word;
}

void read_usage(const json& data, CompletionSoFar& out) {
  const auto usage = data.find("usage");
  if (usage != data.end() && usage->is_object() && usage->contains("prompt_tokens") && (*usage)["prompt_tokens"].is_number_integer())
    out.prompt_tokens = (*usage)["prompt_tokens"].get<int>();
  if (usage != data.end() && usage->is_object() && usage->contains("completion_tokens") &&
      (*usage)["completion_tokens"].is_number_integer())
    out.completion_tokens = (*usage)["completion_tokens"].get<int>();
}

void read_token_ids(const json& choice, CompletionSoFar& out) {
  const auto ids = choice.find("token_ids");
  if (ids == choice.end() || !ids->is_array()) return;
  for (const json& id : *ids)
    if (id.is_number_integer()) out.token_ids.push_back(id.get<int32_t>());
}

}  // namespace

void CompletionEvents::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const size_t end = bytes.find('\n');
    if (end == std::string_view::npos) {
      partial_line_.append(bytes);
      return;
    }
    partial_line_.append(bytes.substr(0, end));
    bytes.remove_prefix(end + 1);
    std::string text;
    text.swap(partial_line_);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    line(text);
  }
}

void CompletionEvents::finish() {
  if (!partial_line_.empty()) {
    std::string text;
    text.swap(partial_line_);
    line(text);
  }
  dispatch();
}

void CompletionEvents::line(std::string_view text) {
  if (text.empty()) return dispatch();
  if (text.front() == ':') return;  // a comment (keep-alive)
  const size_t colon = text.find(':');
  const std::string_view field = text.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field != "data") return;  // event, id, retry: nothing a completion needs
  if (have_data_) data_ += '\n';
  data_.append(value);
  have_data_ = true;
}

void CompletionEvents::dispatch() {
  if (!have_data_) return;
  std::string data;
  data.swap(data_);
  have_data_ = false;
  if (data == "[DONE]") {
    so_far_.done = true;
    return;
  }
  json parsed = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    if (so_far_.error.empty()) so_far_.error = "the server sent an event that is not JSON: " + data.substr(0, 200);
    return;
  }
  chunk(parsed);
}

void CompletionEvents::chunk(const json& data) {
  if (!data.is_object()) return;
  if (std::string e = error_message(data); !e.empty()) {
    if (so_far_.error.empty()) so_far_.error = std::move(e);
    return;
  }
  read_usage(data, so_far_);
  if (auto word = llama_stopping_word(data)) stopping_word_ = std::move(word);
  read_choices(data);
  settle_stop(stopping_word_, so_far_);
}

void CompletionEvents::read_choices(const json& data) {
  const auto choices = data.find("choices");
  if (choices == data.end() || !choices->is_array()) return;
  for (const json& choice : *choices) {
    if (!choice.is_object()) continue;
    const auto index = choice.find("index");
    if (index != choice.end() && *index != 0) continue;  // n = 1: choice 0 only
    const auto delta = choice.find("delta");
    if (delta != choice.end() && delta->is_object()) {
      const auto content = delta->find("content");
      if (content != delta->end() && content->is_string() && !content->get_ref<const std::string&>().empty()) {
        const std::string& piece = content->get_ref<const std::string&>();
        so_far_.text += piece;
        if (on_text_) on_text_(piece);
      }
    }
    read_token_ids(choice, so_far_);
    read_finish(choice, so_far_);
  }
}

CompletionSoFar read_completion(const json& body) {
  CompletionSoFar out;
  if (std::string e = error_message(body); !e.empty()) {
    out.error = std::move(e);
    return out;
  }
  read_usage(body, out);
  const auto choices = body.find("choices");
  if (choices != body.end() && choices->is_array() && !choices->empty() && (*choices)[0].is_object()) {
    const json& choice = (*choices)[0];
    const auto message = choice.find("message");
    if (message != choice.end() && message->is_object() && message->contains("content") && (*message)["content"].is_string())
      out.text = (*message)["content"].get<std::string>();
    read_token_ids(choice, out);
    read_finish(choice, out);
  }
  settle_stop(llama_stopping_word(body), out);
  out.done = true;
  return out;
}

}  // namespace qwenvl::remote
