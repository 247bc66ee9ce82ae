// The HTTP routes of qwenvl-server on a cpp-httplib server:
//   POST /v1/chat/completions   the engine's answer, whole or streamed (chat_request.h, chat_response.h)
//   GET  /v1/models, /v1/models/{name}   the one served model
//   GET  /health                200 while serving, 503 once draining
//   GET  /metrics               Prometheus text (metrics.h)
// With an API key, the /v1/ routes ask for "Authorization: Bearer KEY" (401 otherwise); /health
// and /metrics never do. Every error is OpenAI's error object with a 4xx or 5xx status. A client
// that goes away before its answer, whole or streamed, has its request cancelled in the engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "engine_request.h"
#include "metrics.h"
#include "qwenvl/engine.h"
#include "server_options.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace qwenvl::server {

class Routes {
 public:
  Routes(Engine& engine, const ServerOptions& options, const RequestLimits& limits);

  void install(httplib::Server& http);

  // Stops taking chat completions (503 from now on, /health too); those in flight go on.
  void start_draining();
  int in_flight() const { return in_flight_.load(); }

 private:
  void chat_completions(const httplib::Request& req, httplib::Response& res);
  bool authorized(const httplib::Request& req) const;
  void reply_error(httplib::Response& res, const ApiError& error);
  nlohmann::json model_object() const;

  Engine& engine_;
  const ServerOptions options_;
  const RequestLimits limits_;
  const int64_t started_;  // Unix seconds: the model's "created"
  Metrics metrics_;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace qwenvl::server
