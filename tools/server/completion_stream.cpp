// The completion channel and the server-sent-event writer over cpp-httplib's chunked responses.
#include "completion_stream.h"

#include <httplib.h>

#include "api_error.h"

namespace qwenvl::server {

void CompletionChannel::text(std::string_view piece) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    text_ += piece;
  }
  changed_.notify_all();
}

void CompletionChannel::end(const Result& result) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    result_ = result;
  }
  changed_.notify_all();
}

CompletionChannel::Events CompletionChannel::take(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return !text_.empty() || result_.has_value(); });
  Events events;
  events.text.swap(text_);
  events.result = result_;
  return events;
}

namespace {

// How long the writer waits for the engine before it looks at the client again: a client gone
// while the engine prefills is noticed within this.
constexpr std::chrono::milliseconds kPoll{50};

struct StreamState {
  std::shared_ptr<CompletionChannel> channel;
  StreamOptions options;
  std::function<void()> cancel;
  std::function<void()> on_finished;
  bool started = false;
  bool ended = false;
  size_t streamed = 0;  // bytes of the answer's text sent
};

ApiError error_of(const Result& result) {
  ApiError e;
  e.status = 500;
  e.type = "server_error";
  e.code = status_name(result.status);
  e.message = "the request " + std::string(status_name(result.status)) + ": " + result.error;
  return e;
}

// One call of cpp-httplib's chunked provider: writes what has come (or waits a little for it).
bool write_some(StreamState& s, httplib::DataSink& sink) {
  auto send = [&](const std::string& text) { return sink.write(text.data(), text.size()); };
  const bool usage_field = s.options.include_usage;
  if (!s.started) {
    s.started = true;
    return send(event(role_chunk(s.options.header, usage_field)));
  }
  CompletionChannel::Events events = s.channel->take(kPoll);
  if (!events.text.empty()) {
    s.streamed += events.text.size();
    if (!send(event(content_chunk(s.options.header, events.text, usage_field)))) return false;
  }
  if (!events.result) return sink.is_writable();  // nothing new: is the client still there?
  const Result& result = *events.result;
  s.ended = true;
  std::string tail;
  if (result.status == Status::kAnswered) {
    if (result.text.size() > s.streamed)  // the engine streams it all; never lose a remainder
      tail += event(content_chunk(s.options.header, result.text.substr(s.streamed), usage_field));
    tail += event(finish_chunk(s.options.header, result, s.options.token_ids, usage_field));
    if (s.options.include_usage) tail += event(usage_chunk(s.options.header, result));
  } else {
    tail += event(error_of(result).body());
  }
  tail += kDoneEvent;
  if (!send(tail)) return false;
  sink.done();
  return true;
}

}  // namespace

void stream_completion(httplib::Response& response, std::shared_ptr<CompletionChannel> channel,
                       const StreamOptions& options, std::function<void()> cancel, std::function<void()> on_finished) {
  auto state = std::make_shared<StreamState>();
  state->channel = std::move(channel);
  state->options = options;
  state->cancel = std::move(cancel);
  state->on_finished = std::move(on_finished);
  response.set_header("Cache-Control", "no-cache");
  response.set_chunked_content_provider(
      "text/event-stream", [state](size_t, httplib::DataSink& sink) { return write_some(*state, sink); },
      [state](bool) {
        if (!state->ended) state->cancel();  // the client went away (or the write failed) first
        state->on_finished();
      });
}

}  // namespace qwenvl::server
