// A tiny OpenAI-compatible server for the remote engine's tests: cpp-httplib on a loopback port,
// answering POST /v1/chat/completions as the test says (a recorded transcript streamed in small
// pieces, an HTTP error, silence, a stream that never ends) and GET /v1/models; it keeps every
// request body and Authorization header, counts connections and requests at once, and notices a
// client that went away.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace qwenvl::test {

class ScriptedServer {
 public:
  struct Reply {
    int status = 200;
    std::string body;                      // streamed as text/event-stream when status is 200 and sse
    bool sse = true;
    size_t piece = 37;                     // bytes a write
    std::chrono::milliseconds pause{1};    // between writes
    std::chrono::milliseconds delay{0};    // before the headers
    bool endless = false;                  // keeps streaming comments until the client goes
  };

  // port 0: any free port.
  explicit ScriptedServer(int port = 0) {
    server_.set_keep_alive_timeout(1);  // stop() waits for kept-alive connections to time out
    server_.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"object": "list", "data": [{"id": "served-model", "object": "model"}]})", "application/json");
    });
    server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { answer(req, res); });
    port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1") : (server_.bind_to_port("127.0.0.1", port) ? port : -1);
    if (port_ <= 0) throw std::runtime_error("the scripted server cannot bind");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ScriptedServer() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  void reply_with(Reply reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    reply_ = std::move(reply);
  }
  std::vector<std::string> bodies() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return bodies_;
  }
  std::vector<std::string> authorizations() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return authorizations_;
  }
  size_t connections() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return client_ports_.size();
  }
  int most_at_once() const { return most_at_once_; }
  int clients_gone() const { return clients_gone_; }

 private:
  void answer(const httplib::Request& req, httplib::Response& res) {
    Reply reply;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reply = reply_;
      bodies_.push_back(req.body);
      authorizations_.push_back(req.get_header_value("Authorization"));
      client_ports_.insert(req.remote_port);
    }
    const int now = ++at_once_;
    for (int most = most_at_once_; now > most && !most_at_once_.compare_exchange_weak(most, now);) {
    }
    std::this_thread::sleep_for(reply.delay);
    res.status = reply.status;
    if (reply.status != 200 || !reply.sse) {
      res.set_content(reply.body, "application/json");
      --at_once_;
      return;
    }
    auto sent = std::make_shared<size_t>(0);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, reply, sent](size_t, httplib::DataSink& sink) {
          std::this_thread::sleep_for(reply.pause);
          if (reply.endless) {
            if (!sink.is_writable() || !sink.write(": still thinking\n\n", 18)) {
              ++clients_gone_;
              return false;
            }
            return true;
          }
          const size_t n = std::min(reply.piece, reply.body.size() - *sent);
          if (!sink.write(reply.body.data() + *sent, n)) {
            ++clients_gone_;
            return false;
          }
          *sent += n;
          if (*sent == reply.body.size()) sink.done();
          return true;
        },
        [this](bool) { --at_once_; });
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  Reply reply_;
  std::vector<std::string> bodies_, authorizations_;
  std::set<int> client_ports_;
  std::atomic<int> at_once_{0}, most_at_once_{0}, clients_gone_{0};
};

}  // namespace qwenvl::test
