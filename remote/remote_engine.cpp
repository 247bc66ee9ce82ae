// qwenvl::Engine over OpenAI's chat-completions API (qwenvl/remote_engine.h): a queue, max_inflight
// worker threads each with its own kept-alive cpp-httplib Client, a monitor thread for deadlines,
// and the backoff that paces attempts at a server that failed.
#include "qwenvl/remote_engine.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "base_url.h"
#include "chat_body.h"
#include "completion_events.h"
#include "frame_encoding.h"
#include "server_backoff.h"

namespace qwenvl::remote {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr size_t kMaxErrorBody = 64 * 1024;  // of a non-200 response kept for its message
constexpr std::chrono::milliseconds kMonitorPoll{10};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One submitted request, from submit() to its end.
struct Pending {
  RequestId id = 0;
  Request request;  // its FrameViews point into `frames`
  std::vector<OwnedFrame> frames;
  std::promise<Result> promise;
  Clock::time_point submitted;
  std::atomic<bool> cancelled{false};
  std::atomic<bool> expired{false};
};

struct Worker {
  std::thread thread;
  std::mutex mutex;                        // guards client and current against cancel() / the monitor
  std::unique_ptr<httplib::Client> client;
  std::shared_ptr<Pending> current;        // on the wire now
};

// The message of an error body: OpenAI's {"error": {"message": ...}}, else the text itself.
std::string error_body_message(const std::string& body) {
  const json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_discarded()) {
    const std::string message = read_completion(parsed).error;
    if (!message.empty()) return message;
  }
  return body.substr(0, 500);
}

class RemoteEngine final : public Engine {
 public:
  RemoteEngine(const RemoteEngineOptions& options, BaseUrl url, std::string model)
      : remote_(options), url_(std::move(url)), model_(std::move(model)),
        backoff_(options.backoff_min, options.backoff_max) {
    options_.model_dir = model_;  // what clients print as "the model"
    options_.device = remote_.base_url;
    options_.devices = remote_.base_url;
    options_.max_batch = remote_.max_inflight;
    workers_.resize(static_cast<size_t>(std::max(1, remote_.max_inflight)));
    for (auto& worker : workers_) {
      worker = std::make_unique<Worker>();
      Worker* w = worker.get();
      w->thread = std::thread([this, w] { work(*w); });
    }
    monitor_ = std::thread([this] { monitor(); });
  }

  ~RemoteEngine() override {
    std::deque<std::shared_ptr<Pending>> queued;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      queued.swap(queue_);
    }
    queue_changed_.notify_all();
    monitor_wake_.notify_all();
    for (auto& p : queued) end(*p, Status::kCancelled, "cancelled", "the engine is shutting down");
    for (auto& worker : workers_) {
      std::lock_guard<std::mutex> lock(worker->mutex);
      if (worker->current) {
        worker->current->cancelled = true;
        if (worker->client) worker->client->stop();
      }
    }
    for (auto& worker : workers_) worker->thread.join();
    monitor_.join();
  }

  Submission submit(Request request) override {
    auto p = std::make_shared<Pending>();
    p->submitted = Clock::now();
    Submission submission;
    submission.result = p->promise.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      p->id = submission.id = ++next_id_;
      ++stats_.submitted;
    }
    try {  // the caller's frames are copied before submit() returns; encoded later, on a worker
      for (auto* list : {&request.images, &request.clip})
        for (FrameView& view : *list) {
          p->frames.push_back(copy_frame(view));
          view = p->frames.back().view;
        }
    } catch (const Error& e) {
      p->request = std::move(request);
      end(*p, Status::kFailed, "failed", e.what());
      return submission;
    }
    p->request = std::move(request);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) {
        p->cancelled = true;
      } else {
        queue_.push_back(p);
        p = nullptr;
      }
    }
    if (p) end(*p, Status::kCancelled, "cancelled", "the engine is shutting down");
    queue_changed_.notify_one();
    return submission;
  }

  bool cancel(RequestId id) override {
    std::shared_ptr<Pending> queued;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = queue_.begin(); it != queue_.end(); ++it)
        if ((*it)->id == id) {
          queued = *it;
          queue_.erase(it);
          break;
        }
    }
    if (queued) {
      end(*queued, Status::kCancelled, "cancelled", "cancelled by the caller");
      return true;
    }
    for (auto& worker : workers_) {
      std::lock_guard<std::mutex> lock(worker->mutex);
      if (worker->current && worker->current->id == id) {
        if (worker->current->cancelled.exchange(true)) return false;
        if (worker->client) worker->client->stop();  // closes the connection: the server sees the client go
        return true;
      }
    }
    return false;
  }

  // Marks a request still in the queue: the worker that takes it ends it as cancelled before sending
  // anything (no callback runs here).
  bool cancel_queued(RequestId id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& p : queue_)
      if (p->id == id) return !p->cancelled.exchange(true);
    return false;
  }

  EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    EngineStats s = stats_;
    s.queued = queue_.size();
    s.running = running_;
    return s;
  }

  const EngineOptions& options() const override { return options_; }

 private:
  // Every request ends here, exactly once.
  void end(Pending& p, Status status, std::string finish_reason, std::string error, Result result = {}) {
    result.id = p.id;
    result.status = status;
    result.stream_id = p.request.stream_id;
    if (status != Status::kAnswered) result.finish_reason = std::move(finish_reason);
    result.error = std::move(error);
    result.total_ms = ms_since(p.submitted);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      switch (status) {
        case Status::kAnswered: ++stats_.answered; break;
        case Status::kCancelled: ++stats_.cancelled; break;
        case Status::kExpired: ++stats_.expired; break;
        case Status::kFailed: ++stats_.failed; break;
      }
    }
    if (p.request.on_complete) {
      try {
        p.request.on_complete(result);
      } catch (...) {  // a client's callback must not take a worker down
      }
    }
    p.promise.set_value(std::move(result));
  }

  bool past_deadline(const Pending& p) const {
    return p.request.deadline && Clock::now() >= *p.request.deadline;
  }

  void work(Worker& w) {
    while (true) {
      std::shared_ptr<Pending> p;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        queue_changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        p = queue_.front();
        queue_.pop_front();
        ++running_;
      }
      run(w, p);
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
    }
  }

  void run(Worker& w, const std::shared_ptr<Pending>& p) {
    Pending& pending = *p;
    bool probe = false;
    const bool turn = backoff_.wait_turn(
        [&] { return pending.cancelled.load() || stopping_flag() || past_deadline(pending); }, &probe);
    if (!turn || pending.cancelled || past_deadline(pending)) {
      backoff_.abandoned(probe);
      if (past_deadline(pending) && !pending.cancelled)
        return end(pending, Status::kExpired, "expired", "the deadline passed while the server was unreachable");
      return end(pending, Status::kCancelled, "cancelled",
                 stopping_flag() ? "the engine is shutting down" : "cancelled by the caller");
    }
    std::string body;
    try {
      std::vector<std::string> urls;
      for (const OwnedFrame& frame : pending.frames)
        urls.push_back(image_data_uri(frame.view, remote_.image_format, remote_.jpeg_quality));
      body = chat_body(pending.request, model_, urls).dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const std::exception& e) {
      backoff_.abandoned(probe);
      return end(pending, Status::kFailed, "failed", std::string("the request could not be encoded: ") + e.what());
    }
    exchange(w, p, std::move(body), probe);
  }

  bool stopping_flag() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_;
  }

  // One POST, streamed; ends the request.
  void exchange(Worker& w, const std::shared_ptr<Pending>& p, std::string body, bool probe) {
    Pending& pending = *p;
    Result result;
    int status = 0;
    bool event_stream = false;
    bool verdict = false;  // the backoff was told how the server did
    std::string other_body;  // a non-SSE body: an error, or a whole chat.completion
    CompletionEvents events([&](std::string_view piece) {
      if (result.ttft_ms == 0) result.ttft_ms = ms_since(pending.submitted);
      if (pending.request.on_partial) pending.request.on_partial(pending.id, piece);
    });

    httplib::Request req;
    req.method = "POST";
    req.path = url_.path + "/chat/completions";
    req.body = std::move(body);
    req.set_header("Content-Type", "application/json");
    req.set_header("Accept", "text/event-stream");
    req.set_header("Accept-Encoding", "identity");  // events as they come, not held back by a compressor
    if (!remote_.api_key.empty()) req.set_header("Authorization", "Bearer " + remote_.api_key);
    req.response_handler = [&](const httplib::Response& response) {
      status = response.status;
      event_stream = response.get_header_value("Content-Type").rfind("text/event-stream", 0) == 0;
      if (status >= 500) {
        backoff_.failed(probe);
      } else {
        backoff_.succeeded();
      }
      verdict = true;
      return !pending.cancelled && !pending.expired;
    };
    req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
      if (status == 200 && event_stream) {
        events.feed(std::string_view(data, size));
      } else if (other_body.size() < (status == 200 ? size_t{1} << 30 : kMaxErrorBody)) {
        other_body.append(data, size);
      }
      return !pending.cancelled && !pending.expired;
    };

    httplib::Response response;
    httplib::Error error = httplib::Error::Success;
    {
      std::lock_guard<std::mutex> lock(w.mutex);
      if (!w.client) {
        w.client = std::make_unique<httplib::Client>(url_.origin);
        w.client->set_keep_alive(true);
        w.client->set_connection_timeout(remote_.connect_timeout);
        w.client->set_read_timeout(remote_.timeout);
        w.client->set_write_timeout(remote_.timeout);
      }
      w.current = p;
    }
    const bool sent = w.client->send(req, response, error);
    {
      std::lock_guard<std::mutex> lock(w.mutex);
      w.current = nullptr;
    }

    if (pending.cancelled) {
      if (!verdict) backoff_.abandoned(probe);
      return end(pending, Status::kCancelled, "cancelled",
                 stopping_flag() ? "the engine is shutting down" : "cancelled by the caller");
    }
    if (pending.expired) {
      if (!verdict) backoff_.abandoned(probe);
      return end(pending, Status::kExpired, "expired", "the deadline passed before the answer was complete");
    }
    const std::string where = remote_.base_url;
    if (!sent) {
      backoff_.failed(probe && !verdict);  // refused, timed out, or gone mid-answer: the server is down
      std::string why = httplib::to_string(error);
      if (error == httplib::Error::Read && status == 200) why = "the connection was lost during the answer";
      return end(pending, Status::kFailed, "failed", "the server at " + where + " failed: " + why);
    }
    if (status != 200) {
      return end(pending, Status::kFailed, "failed",
                 "the server at " + where + " answered HTTP " + std::to_string(status) + ": " + error_body_message(other_body));
    }
    CompletionSoFar answer;
    if (event_stream) {
      events.finish();
      answer = events.so_far();
    } else {
      const json parsed = json::parse(other_body, nullptr, false);
      if (parsed.is_discarded())
        return end(pending, Status::kFailed, "failed", "the server at " + where + " sent a body that is neither events nor JSON");
      answer = read_completion(parsed);
      if (!answer.text.empty() && pending.request.on_partial) pending.request.on_partial(pending.id, answer.text);
      result.ttft_ms = ms_since(pending.submitted);
    }
    if (!answer.error.empty())
      return end(pending, Status::kFailed, "failed", "the server at " + where + " failed the request: " + answer.error);
    if (answer.finish_reason.empty()) {
      backoff_.failed(false);  // a stream cut short: the server went away during it
      return end(pending, Status::kFailed, "failed",
                 "the server at " + where + " ended the stream before the answer was complete");
    }
    result.text = std::move(answer.text);
    result.token_ids = std::move(answer.token_ids);
    result.finish_reason = answer.finish_reason;
    result.stop_string = answer.stop_string;
    result.prompt_tokens = answer.prompt_tokens.value_or(0);
    // llama-server sends no ids: its usage says how many tokens it generated.
    result.generated_tokens = answer.completion_tokens.value_or(static_cast<int>(result.token_ids.size()));
    if (result.ttft_ms == 0) result.ttft_ms = ms_since(pending.submitted);
    // A constrained answer cut by max_tokens is marked, as the local engine marks it; a complete one
    // the server did not constrain (a server without the request's form ignores it) fails, never
    // passing for a constrained answer.
    const SamplingParams& s = pending.request.sampling;
    if (!s.json_schema.empty() || !s.choices.empty()) {
      if (result.finish_reason == "length") {
        result.incomplete = true;
      } else if (!s.choices.empty() && std::find(s.choices.begin(), s.choices.end(), result.text) == s.choices.end()) {
        return end(pending, Status::kFailed, "failed",
                   "the server at " + where + " answered \"" + result.text.substr(0, 80) +
                       "\", not one of the choices (it did not apply structured_outputs.choice)");
      } else if (!s.json_schema.empty() && json::parse(result.text, nullptr, false).is_discarded()) {
        return end(pending, Status::kFailed, "failed",
                   "the server at " + where + " answered with no JSON document (it did not apply response_format's schema)");
      }
    }
    end(pending, Status::kAnswered, "", "", std::move(result));
  }

  // Deadlines of requests on the wire: the connection is closed when one passes. (Queued requests
  // are looked at when a worker takes them, and while they wait for the backoff.)
  void monitor() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (monitor_wake_.wait_for(lock, kMonitorPoll, [&] { return stopping_; })) return;
      }
      for (auto& worker : workers_) {
        std::lock_guard<std::mutex> lock(worker->mutex);
        const auto& p = worker->current;
        if (p && !p->expired && past_deadline(*p)) {
          p->expired = true;
          if (worker->client) worker->client->stop();
        }
      }
      expire_queued();
    }
  }

  void expire_queued() {
    std::vector<std::shared_ptr<Pending>> expired;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (past_deadline(**it)) {
          expired.push_back(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& p : expired) end(*p, Status::kExpired, "expired", "the deadline passed while the request was queued");
  }

  RemoteEngineOptions remote_;
  BaseUrl url_;
  std::string model_;
  EngineOptions options_;
  ServerBackoff backoff_;

  mutable std::mutex mutex_;
  std::condition_variable queue_changed_;
  std::condition_variable monitor_wake_;
  std::deque<std::shared_ptr<Pending>> queue_;
  bool stopping_ = false;
  RequestId next_id_ = 0;
  size_t running_ = 0;
  EngineStats stats_;

  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread monitor_;
};

// GET {base}/models: the first model's id, for options without one.
std::string first_served_model(const RemoteEngineOptions& options, const BaseUrl& url) {
  httplib::Client client(url.origin);
  client.set_connection_timeout(options.connect_timeout);
  client.set_read_timeout(options.timeout);
  httplib::Headers headers;
  if (!options.api_key.empty()) headers.emplace("Authorization", "Bearer " + options.api_key);
  const httplib::Result response = client.Get(url.path + "/models", headers);
  if (!response)
    throw Error("no model was given and the server at " + options.base_url + " cannot be asked for its models: " +
                httplib::to_string(response.error()));
  if (response->status != 200)
    throw Error("no model was given and GET " + options.base_url + "/models answered HTTP " +
                std::to_string(response->status) + ": " + error_body_message(response->body));
  const json models = json::parse(response->body, nullptr, false);
  if (models.is_discarded() || !models.contains("data") || !models["data"].is_array() || models["data"].empty() ||
      !models["data"][0].is_object() || !models["data"][0].contains("id") || !models["data"][0]["id"].is_string())
    throw Error("no model was given and GET " + options.base_url + "/models lists none");
  return models["data"][0]["id"].get<std::string>();
}

}  // namespace
}  // namespace qwenvl::remote

extern "C" qwenvl::Engine* qwenvl_remote_engine_create(const qwenvl::RemoteEngineOptions* options, std::string* error) {
  try {
    if (options == nullptr) throw qwenvl::Error("no options");
    if (options->max_inflight < 1) throw qwenvl::Error("max-inflight must be at least 1");
    if (options->image_format == qwenvl::RemoteImageFormat::kJpeg && (options->jpeg_quality < 1 || options->jpeg_quality > 100))
      throw qwenvl::Error("the JPEG quality must be 1-100");
    qwenvl::remote::BaseUrl url = qwenvl::remote::parse_base_url(options->base_url);
    std::string model = options->model.empty() ? qwenvl::remote::first_served_model(*options, url) : options->model;
    return new qwenvl::remote::RemoteEngine(*options, std::move(url), std::move(model));
  } catch (const std::exception& e) {
    if (error != nullptr) *error = e.what();
    return nullptr;
  }
}
