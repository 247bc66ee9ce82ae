// One chat completion between the engine and the HTTP thread that answers it: the engine's callbacks
// (on its own thread) hand text and the end to a CompletionChannel; for stream=true the HTTP thread
// writes them as server-sent events (chat_response.h) while they come, and a client that goes away
// mid-stream has its request cancelled in the engine.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "chat_response.h"
#include "qwenvl/engine.h"

namespace httplib {
struct Response;
}

namespace qwenvl::server {

class CompletionChannel {
 public:
  // From the engine's thread.
  void text(std::string_view piece);
  void end(const Result& result);

  struct Events {
    std::string text;              // new since the last take
    std::optional<Result> result;  // once the request has ended
  };
  // Waits up to `timeout` for new text or the end, then takes what there is.
  Events take(std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;
  std::optional<Result> result_;
};

struct StreamOptions {
  CompletionHeader header;
  bool include_usage = false;
  bool token_ids = false;
};

// Makes `response` the event stream of the request behind `channel`: the role chunk at once, each
// piece of text as a content chunk, then the finish chunk, the usage chunk if asked, and [DONE]; a
// request that ended without an answer sends an error event ({"error": {...}}) before [DONE], as
// vLLM does. `cancel` is called when the client is gone before the end; `on_finished` when the stream
// is over either way (it holds what must live as long as the stream).
void stream_completion(httplib::Response& response, std::shared_ptr<CompletionChannel> channel,
                       const StreamOptions& options, std::function<void()> cancel, std::function<void()> on_finished);

}  // namespace qwenvl::server
