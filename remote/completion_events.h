// Reads a chat completion as servers send it: server-sent events (OpenAI's chat.completion.chunk
// objects and `data: [DONE]`) fed in pieces of any size as they arrive, or one chat.completion
// object. Reads the shapes vLLM, llama-server and qwenvl-server write: content deltas, token ids
// per chunk (vLLM's return_token_ids) or all in the last chunk (qwenvl-server), usage in a last
// chunk of its own (OpenAI, vLLM) or beside the finish reason (llama-server, with its `timings`),
// which stop ended the answer (vLLM's stop_reason; llama-server's stop_type and stopping_word, which
// it sends in `__verbose` when started with --verbose), and error objects in the stream.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qwenvl::remote {

struct CompletionSoFar {
  std::string text;
  std::vector<int32_t> token_ids;
  std::optional<int> prompt_tokens;  // from a usage object
  std::optional<int> completion_tokens;  // from a usage object
  std::string finish_reason;         // as qwenvl::Result names it: "eos", "length", "stop_string"; empty: not yet
  std::string stop_string;           // "stop_string": the one that matched (a server that says only "stop": "eos")
  std::string error;                 // an error object the server sent (its message)
  bool done = false;                 // `data: [DONE]` came
};

class CompletionEvents {
 public:
  using TextCallback = std::function<void(std::string_view)>;
  explicit CompletionEvents(TextCallback on_text = nullptr) : on_text_(std::move(on_text)) {}

  void feed(std::string_view bytes);
  // The body ended: an event left without its blank line still counts.
  void finish();
  const CompletionSoFar& so_far() const { return so_far_; }

  // One chat.completion.chunk (or error object), already parsed; feed() calls it for each event.
  void chunk(const nlohmann::json& data);

 private:
  void read_choices(const nlohmann::json& data);
  void line(std::string_view text);
  void dispatch();

  TextCallback on_text_;
  CompletionSoFar so_far_;
  std::optional<std::string> stopping_word_;  // llama-server's, which may come before the finish reason
  std::string partial_line_;
  std::string data_;
  bool have_data_ = false;
};

// A whole (not streamed) chat.completion object, or an error object.
CompletionSoFar read_completion(const nlohmann::json& body);

}  // namespace qwenvl::remote
