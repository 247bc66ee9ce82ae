// libFuzzer harness: a chat-completions response body as the remote engine reads it from a server
// (remote/completion_events.cpp): fed as server-sent events in pieces of a size the first byte
// picks, and parsed whole as a chat.completion object. The partial texts must add up to the text,
// the same body read in one piece must say the same, and nothing may escape.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "remote/completion_events.h"

namespace {

qwenvl::remote::CompletionSoFar read(std::string_view body, size_t piece, std::string* partials) {
  qwenvl::remote::CompletionEvents events([&](std::string_view text) { *partials += text; });
  for (size_t i = 0; i < body.size(); i += piece) events.feed(body.substr(i, piece));
  events.finish();
  return events.so_far();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string partials, whole_partials;
  const remote::CompletionSoFar pieces = read(body, piece, &partials);
  const remote::CompletionSoFar whole = read(body, body.size() + 1, &whole_partials);
  fuzz::require(partials == pieces.text, "the partial texts do not add up to the text");
  fuzz::require(pieces.text == whole.text && pieces.token_ids == whole.token_ids &&
                    pieces.finish_reason == whole.finish_reason && pieces.stop_string == whole.stop_string &&
                    pieces.prompt_tokens == whole.prompt_tokens &&
                    pieces.error == whole.error && pieces.done == whole.done,
                "reading in pieces of " + std::to_string(piece) + " bytes differs from reading whole");
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  if (!parsed.is_discarded()) (void)remote::read_completion(parsed);
  return 0;
}
