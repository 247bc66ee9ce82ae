// qwenvl-server's handlers: authentication, the chat completions, the model list, health and metrics.
#include "routes.h"

#include <httplib.h>

#include <chrono>
#include <future>
#include <memory>

#include "chat_request.h"
#include "chat_response.h"
#include "client_connection.h"
#include "completion_stream.h"

namespace qwenvl::server {

namespace {

using nlohmann::json;

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// How often a handler waiting for a whole answer looks at its client.
constexpr std::chrono::milliseconds kClientPoll{50};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Equal strings in a time that does not depend on where they differ.
bool same_secret(const std::string& given, const std::string& expected) {
  if (given.size() != expected.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ expected[i]);
  return diff == 0;
}

// What a request that reached the engine and did not answer becomes, when nothing has been sent yet.
ApiError unanswered(const Result& result) {
  if (result.status == Status::kFailed && result.token_ids.empty())  // refused by the engine: the request's fault
    return invalid_request(result.error, "messages", "request_failed");
  ApiError e;
  e.status = result.status == Status::kCancelled ? 503 : 500;
  e.type = "server_error";
  e.code = status_name(result.status);
  e.message = "the request " + std::string(status_name(result.status)) + ": " + result.error;
  return e;
}

// Counts a chat completion from its handler until its answer or stream is over.
class InFlight {
 public:
  InFlight(std::atomic<int>& count, Metrics& metrics) : count_(count), metrics_(metrics) {
    ++count_;
    metrics_.in_flight(+1);
  }
  ~InFlight() {
    metrics_.in_flight(-1);
    --count_;
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int>& count_;
  Metrics& metrics_;
};

}  // namespace

Routes::Routes(Engine& engine, const ServerOptions& options, const RequestLimits& limits)
    : engine_(engine), options_(options), limits_(limits), started_(unix_seconds()) {}

void Routes::reply_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status;
  res.set_content(dump(error.body()), "application/json");
}

bool Routes::authorized(const httplib::Request& req) const {
  if (options_.api_key.empty()) return true;
  return same_secret(req.get_header_value("Authorization"), "Bearer " + options_.api_key);
}

json Routes::model_object() const {
  return {{"id", options_.served_model_name},
          {"object", "model"},
          {"created", started_},
          {"owned_by", "qwenvl"},
          {"max_model_len", engine_.options().max_context}};
}

void Routes::install(httplib::Server& http) {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!starts_with(req.path, "/v1/") || authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
    if (req.path == "/v1/chat/completions") metrics_.rejected();
    reply_error(res, ApiError{401, "Incorrect API key provided: send 'Authorization: Bearer KEY'.",
                              "invalid_request_error", "", "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  // cpp-httplib's own refusals (no such route, a body over the limit, a malformed request) get
  // OpenAI's error body too.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
        ApiError e{res.status, "the request was refused (HTTP " + std::to_string(res.status) + ")",
                   "invalid_request_error", "", ""};
        if (res.status == 404) e.message = "no route " + req.method + " " + req.path;
        if (res.status == 413) {
          e.code = "body_too_large";
          e.message = "the request body is over the limit of " + std::to_string(options_.max_body_bytes) +
                      " bytes (--max-body-bytes)";
          if (req.get_header_value("Content-Type") == "application/x-www-form-urlencoded")  // curl -d's default
            e.message = "a form-encoded body over cpp-httplib's 8192 bytes: send Content-Type: application/json";
        }
        if (req.path == "/v1/chat/completions") metrics_.rejected();
        reply_error(res, e);
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    reply_error(res, ApiError{500, "internal error: " + what, "server_error", "", ""});
  });

  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { chat_completions(req, res); });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump({{"object", "list"}, {"data", json::array({model_object()})}}), "application/json");
  });
  http.Get("/v1/models/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != options_.served_model_name)
      return reply_error(res, ApiError{404, "The model '" + req.matches[1].str() + "' does not exist.",
                                       "invalid_request_error", "model", "model_not_found"});
    res.set_content(dump(model_object()), "application/json");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool draining = draining_.load();
    res.status = draining ? 503 : 200;
    res.set_content(dump({{"status", draining ? "draining" : "ok"}}), "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(engine_.stats(), engine_.options().device),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
}

void Routes::start_draining() { draining_ = true; }

void Routes::chat_completions(const httplib::Request& req, httplib::Response& res) {
  auto in_flight = std::make_shared<InFlight>(in_flight_, metrics_);
  if (draining_) {
    metrics_.rejected();
    return reply_error(res, ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
  }
  bool stream = false;
  StreamOptions stream_options;
  EngineRequest prepared;
  try {
    ChatRequest chat = parse_chat_request(req.body);
    if (chat.model != options_.served_model_name)
      throw ApiError{
          404,
          "The model '" + chat.model + "' does not exist: this server serves '" + options_.served_model_name + "'.",
          "invalid_request_error", "model", "model_not_found"};
    stream = chat.stream;
    stream_options.include_usage = chat.include_usage;
    stream_options.token_ids = chat.return_token_ids;
    prepared = make_engine_request(std::move(chat), limits_);
  } catch (const ApiError& e) {
    metrics_.rejected();
    return reply_error(res, e);
  }
  stream_options.header = CompletionHeader{new_completion_id(), unix_seconds(), options_.served_model_name};

  auto channel = std::make_shared<CompletionChannel>();
  if (stream) prepared.request.on_partial = [channel](RequestId, std::string_view text) { channel->text(text); };
  prepared.request.on_complete = [channel, this](const Result& result) {
    metrics_.ended(result);
    channel->end(result);
  };
  Submission submission = engine_.submit(std::move(prepared.request));
  prepared.images.clear();  // submit() has copied the frames

  if (stream) {
    const RequestId id = submission.id;
    // The stream outlives this handler: it holds the in-flight count until it is over.
    stream_completion(
        res, channel, stream_options, [this, id] { engine_.cancel(id); }, [in_flight]() mutable { in_flight.reset(); });
    return;
  }
  // The whole answer: a client that hangs up while the engine works has its request cancelled.
  ClientConnection client(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  while (submission.result.wait_for(kClientPoll) != std::future_status::ready)
    if (!client.connected()) {
      engine_.cancel(submission.id);
      break;
    }
  const Result result = submission.result.get();
  if (result.status != Status::kAnswered) return reply_error(res, unanswered(result));
  res.set_content(dump(completion(stream_options.header, result, stream_options.token_ids)), "application/json");
}

}  // namespace qwenvl::server
