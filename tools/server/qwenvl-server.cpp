// qwenvl-server: a Qwen2.5-VL model directory served over OpenAI's chat-completions API (cpp-httplib,
// HTTPS with a certificate), so that the openai clients, vLLM's and llama-server's users, and any
// gateway in front of such servers, can ask it about images.
//   qwenvl-server --model ~/models/Qwen2.5-VL-7B-Instruct --device cuda --host 0.0.0.0 --port 8000
// It prints one line on stdout once it serves ("qwenvl-server: serving NAME on http://HOST:PORT");
// errors at start are one line on stderr and a non-zero exit (1 usage, 2 the model cannot be loaded,
// 3 the address cannot be taken). SIGTERM or SIGINT: it stops taking requests (503), finishes those
// running, then exits 0; a second signal stops at once, and one before it serves ends it (128 + the
// signal) without waiting for the model to load.
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cli_error.h"
#include "engine_flags.h"
#include "media_reader.h"
#include "routes.h"
#include "server_options.h"

namespace {

using namespace qwenvl;
using cli::CliError;

constexpr int kCannotListen = 3;  // exit code: the address cannot be taken
constexpr int kListenBacklog = 1024;  // connections the kernel holds until accepted (capped by net.core.somaxconn)

struct Options {
  cli::EngineFlags engine;
  server::ServerOptions server;
};

const char* kFooter = R"(
Routes: POST /v1/chat/completions (OpenAI's chat completions, streamed with stream=true), GET /v1/models,
GET /health (503 while shutting down), GET /metrics (Prometheus text). With --api-key the /v1/ routes
ask for "Authorization: Bearer KEY".

Requests: system (or developer), user and assistant messages alternating, ending with the user's;
images as image_url parts of the last user message, PNG or JPEG data URIs
(data:image/png;base64,...), in order, placed before its text; remote image URLs are refused (the
server fetches nothing). max_tokens / max_completion_tokens, temperature, top_p, seed, stop, n = 1,
stream, stream_options.include_usage, and the extensions top_k, min_p, repetition_penalty,
ignore_eos and return_token_ids (each choice's generated ids as "token_ids", as vLLM gives them).
Sampling fields left out take the model's generation_config.json, as transformers does.

Shutdown: SIGTERM or SIGINT stops taking requests (503), finishes those running, then exits 0.)";

std::optional<int> parse(int argc, char** argv, Options& o) {
  CLI::App app{"Serves a Qwen2.5-VL model directory over OpenAI's chat-completions API.", "qwenvl-server"};
  app.footer(std::string(kFooter) + "\n" + cli::kMediaSupport);
  app.get_formatter()->column_width(36);
  cli::add_engine_flags(app, o.engine, "devices with caps, e.g. cuda:0=22GiB,cuda:1 (qwenvl-cli --help; wins over --device)");
  o.engine.model_option->required();
  cli::add_serving_flags(app, o.engine);
  auto& s = o.server;
  app.add_option("--host", s.host, "address to listen on (default 127.0.0.1)")->type_name("ADDR");
  app.add_option("--port", s.port, "port to listen on; 0 takes a free one (default 8000)")->type_name("N");
  app.add_option("--served-model-name", s.served_model_name, "the model's name in the API (default: the directory's)")
      ->type_name("NAME");
  app.add_option("--api-key", s.api_key, "ask for 'Authorization: Bearer KEY' on the /v1/ routes")->type_name("KEY");
  auto* cert = app.add_option("--ssl-cert", s.ssl_cert, "HTTPS: certificate chain file (PEM)")->type_name("FILE");
  auto* key = app.add_option("--ssl-key", s.ssl_key, "HTTPS: private key file (PEM)")->type_name("FILE");
  cert->needs(key);
  key->needs(cert);
  app.add_option("--max-body-bytes", s.max_body_bytes, "largest request body (default 64 MiB)")->type_name("N");
  app.add_option("--max-image-pixels", s.max_image_pixels,
                 "most pixels of a request's images together, checked on their headers before decoding "
                 "(default 178956970, twice PIL's limit)")
      ->type_name("N");
  app.add_option("--http-threads", s.http_threads, "connections served at once (default 64)")->type_name("N");
  app.add_flag("--quiet", s.quiet, "no line per request on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    throw CliError{cli::kUsageError, std::string(e.what()) + " (see --help)"};
  }
  cli::check_engine_flags(o.engine, "qwenvl-server");
  cli::check_serving_flags(o.engine);
  auto fail = [](const std::string& m) { throw CliError{cli::kUsageError, m}; };
  if (s.port < 0 || s.port > 65535) fail("--port must be in [0, 65535]");
  if (s.max_body_bytes < 1) fail("--max-body-bytes must be at least 1");
  if (s.max_image_pixels < 1) fail("--max-image-pixels must be at least 1");
  if (s.http_threads < 1) fail("--http-threads must be at least 1");
  for (const std::string* file : {&s.ssl_cert, &s.ssl_key})
    if (!file->empty()) cli::check_readable_file(file == &s.ssl_cert ? "--ssl-cert" : "--ssl-key", *file);
  if (s.served_model_name.empty())
    s.served_model_name = std::filesystem::path(o.engine.model).lexically_normal().filename().string();
  if (s.served_model_name.empty() || s.served_model_name == ".")  // "DIR/" or "."
    s.served_model_name =
        std::filesystem::absolute(o.engine.model).lexically_normal().parent_path().filename().string();
  return std::nullopt;
}

// Takes SIGTERM and SIGINT, blocked in every other thread. Before the server serves (a model can load
// for minutes) a signal ends the process at once; once it serves, the first drains the routes and
// stops the HTTP server, a second one stops it without waiting.
class SignalWatcher {
 public:
  explicit SignalWatcher(const sigset_t& signals) : state_(std::make_shared<State>()) {
    // Detached: a start that fails leaves it waiting, and the process ends around it.
    std::thread([state = state_, signals] { watch(*state, signals); }).detach();
  }
  void serving(server::Routes& routes, httplib::Server& http) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->routes = &routes;
    state_->http = &http;
  }
  // Blocks until the watcher has stopped the HTTP server.
  void wait_until_stopped() { state_->stopped.get_future().wait(); }

 private:
  struct State {
    std::mutex mutex;
    server::Routes* routes = nullptr;
    httplib::Server* http = nullptr;
    std::promise<void> stopped;
  };

  static void watch(State& state, sigset_t signals) {
    int signal = 0;
    sigwait(&signals, &signal);
    std::unique_lock<std::mutex> lock(state.mutex);
    if (state.routes == nullptr) {
      std::fprintf(stderr, "qwenvl-server: %s before serving: stopping\n", strsignal(signal));
      std::_Exit(128 + signal);
    }
    lock.unlock();
    std::fprintf(stderr, "qwenvl-server: %s: finishing %d request(s), taking no more\n", strsignal(signal),
                 state.routes->in_flight());
    state.routes->start_draining();
    const timespec poll{0, 20'000'000};
    while (state.routes->in_flight() > 0)
      if (sigtimedwait(&signals, nullptr, &poll) > 0) {
        std::fprintf(stderr, "qwenvl-server: second signal: stopping now\n");
        break;
      }
    state.http->stop();
    state.stopped.set_value();
  }

  std::shared_ptr<State> state_;
};

int run(int argc, char** argv) {
  // Before any thread starts (the engine's, the HTTP pool's): only the watcher takes these.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not the end

  Options o;
  if (auto code = parse(argc, argv, o)) return *code;
  cli::quiet_media_library();
  const auto& s = o.server;

  std::unique_ptr<httplib::Server> http;
  if (!s.ssl_cert.empty()) {
    http = std::make_unique<httplib::SSLServer>(s.ssl_cert.c_str(), s.ssl_key.c_str());
    if (!http->is_valid())
      throw CliError{cli::kUsageError, "--ssl-cert / --ssl-key: OpenSSL cannot use '" + s.ssl_cert + "' with '" +
                                           s.ssl_key + "' (a PEM certificate and its private key)"};
  } else {
    http = std::make_unique<httplib::Server>();
  }
  const int threads = s.http_threads;
  http->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // Debian's cpp-httplib is a compiled library: its listen() backlog is its default, 5, whatever a
  // macro says here. A burst of clients overflows an accept queue that short (their handshakes stall,
  // then time out as "connection closed"), so the socket is taken here and listened on again with a
  // real backlog once bound. SO_REUSEADDR but not httplib's SO_REUSEPORT: a second server on a port
  // in use is refused, not handed half the connections.
  int listening_socket = -1;
  http->set_socket_options([&listening_socket](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listening_socket = sock;  // the last one tried is the one bound
  });
  http->set_payload_max_length(s.max_body_bytes);
  // Bound first: a port in use is said before a model loads for minutes.
  int port = s.port;
  if (port == 0) {
    port = http->bind_to_any_port(s.host);
    if (port < 0) port = 0;
  } else if (!http->bind_to_port(s.host, port)) {
    port = 0;
  }
  if (port != 0 && ::listen(listening_socket, kListenBacklog) != 0) port = 0;
  if (port == 0)
    throw CliError{kCannotListen, "cannot listen on " + s.host + ":" + std::to_string(s.port) +
                                      " (address in use, not an address of this host, or not allowed)"};

  SignalWatcher watcher(signals);
  std::unique_ptr<Engine> engine;
  try {
    engine = Engine::create(cli::engine_options(o.engine));
  } catch (const std::exception& e) {
    throw CliError{cli::kModelError, "cannot load the model: " + std::string(e.what())};
  }
  server::RequestLimits limits;
  limits.max_image_pixels = s.max_image_pixels;
  limits.min_pixels = o.engine.min_pixels;
  limits.max_pixels = o.engine.max_pixels;
  // Qwen2.5-VL spends a token on each 28x28 pixels (14-pixel patches merged 2x2).
  limits.max_request_min_pixels = engine->options().max_context * 28 * 28;
  server::Routes routes(*engine, s, limits);
  routes.install(*http);
  if (!s.quiet)
    http->set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "qwenvl-server: %s %s %s %d\n", req.remote_addr.c_str(), req.method.c_str(),
                   req.path.c_str(), res.status);
    });

  watcher.serving(routes, *http);
  std::printf("qwenvl-server: serving %s on %s://%s:%d\n", s.served_model_name.c_str(),
              s.ssl_cert.empty() ? "http" : "https", s.host.c_str(), port);
  std::fflush(stdout);
  const bool listened = http->listen_after_bind();  // returns once stopped and every connection is done
  if (!listened) kill(getpid(), SIGTERM);           // the listener failed: the watcher stops the rest
  watcher.wait_until_stopped();
  engine.reset();  // nothing is left running: its threads end
  std::fprintf(stderr, "qwenvl-server: stopped\n");
  return listened ? 0 : kCannotListen;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const CliError& e) {
    std::fprintf(stderr, "qwenvl-server: %s\n", e.message.c_str());
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwenvl-server: %s\n", e.what());
    return 3;
  }
}
