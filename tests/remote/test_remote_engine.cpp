// The remote engine (libqwenvl-remote, loaded through its C entry point) against a scripted local
// server: the recorded vLLM and llama-server streams become Results (text, ids, usage, finish
// reason; partial text as it comes); the request carries the frames as PNG and the sampling fields;
// an HTTP error, a refused connection and a silent server fail the request with the reason; a
// server that comes back is used again after the backoff; cancel and deadlines close the
// connection; 16 requests over 4 kept-alive connections are all answered.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "qwenvl/remote_engine.h"
#include "scripted_server.h"
#include "test_util.h"

namespace qwenvl::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string transcript(const std::string& name) {
  return read_text(std::filesystem::path(QWENVL_TEST_SOURCE_ROOT) / "tests/remote/transcripts" / name);
}

std::unique_ptr<Engine> remote_engine(RemoteEngineOptions options) {
  std::string error;
  std::unique_ptr<Engine> engine(qwenvl_remote_engine_create(&options, &error));
  if (!engine) throw std::runtime_error(error);
  return engine;
}

RemoteEngineOptions options_for(const ScriptedServer& server) {
  RemoteEngineOptions o;
  o.base_url = server.base_url();
  o.model = "served-model";
  o.backoff_min = 50ms;
  o.backoff_max = 200ms;
  return o;
}

// A 4x2 RGB frame and the question.
struct Question {
  std::vector<uint8_t> rgb = std::vector<uint8_t>(4 * 2 * 3, 77);
  Request request() const {
    Request r;
    FrameView frame;  // (FrameView::packed is the engine library's; this test links the remote one only)
    frame.width = 4;
    frame.height = 2;
    frame.planes[0] = rgb.data();
    frame.strides[0] = 4 * 3;
    r.images.push_back(frame);
    r.prompt = "What is this?";
    return r;
  }
};

TEST(RemoteEngine, ReadsVllmsStreamAndSendsTheRequestAsItShould) {
  ScriptedServer server;
  server.reply_with({200, transcript("vllm_stream.sse")});
  RemoteEngineOptions o = options_for(server);
  o.api_key = "sk-test";
  auto engine = remote_engine(o);
  Question q;
  Request r = q.request();
  r.sampling.temperature = 0.0;
  r.sampling.max_new_tokens = 10;
  r.sampling.seed = 7;
  r.stream_id = "cam-1";
  std::string partials;
  RequestId partial_id = 0;
  r.on_partial = [&](RequestId id, std::string_view text) {
    partials += text;
    partial_id = id;
  };
  Submission s = engine->submit(std::move(r));
  const Result result = s.result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(result.id, s.id);
  EXPECT_EQ(result.stream_id, "cam-1");
  EXPECT_EQ(result.text, "The image shows a cat on a sofa.");
  EXPECT_EQ(result.token_ids, (std::vector<int32_t>{785, 2168, 4933, 264, 8251, 389, 264, 31851, 13, 151645}));
  EXPECT_EQ(result.prompt_tokens, 94);
  EXPECT_EQ(result.generated_tokens, 10);
  EXPECT_EQ(result.finish_reason, "eos");
  EXPECT_GT(result.ttft_ms, 0);
  EXPECT_GE(result.total_ms, result.ttft_ms);
  EXPECT_EQ(partials, result.text);
  EXPECT_EQ(partial_id, s.id);

  ASSERT_EQ(server.bodies().size(), 1u);
  const json body = json::parse(server.bodies()[0]);
  EXPECT_EQ(body["model"], "served-model");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["temperature"], 0.0);
  EXPECT_EQ(body["max_tokens"], 10);
  EXPECT_EQ(body["seed"], 7);
  EXPECT_EQ(body["messages"][0]["content"][0]["image_url"]["url"].get<std::string>().rfind("data:image/png;base64,", 0), 0u);
  EXPECT_EQ(server.authorizations()[0], "Bearer sk-test");
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.submitted, 1u);
  EXPECT_EQ(stats.answered, 1u);
}

TEST(RemoteEngine, ReadsLlamaServersStreamAndAsksTheServerForItsModel) {
  ScriptedServer server;
  server.reply_with({200, transcript("llama_server_stream.sse"), true, 5});
  RemoteEngineOptions o = options_for(server);
  o.model.clear();  // the first of GET /v1/models
  auto engine = remote_engine(o);
  EXPECT_EQ(engine->options().model_dir, "served-model");
  Question q;
  const Result result = engine->submit(q.request()).result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(result.text, "A red car parked by the kerb — なかなか.");
  EXPECT_TRUE(result.token_ids.empty());
  EXPECT_EQ(result.prompt_tokens, 287);
  EXPECT_EQ(result.generated_tokens, 11) << "no ids from llama-server: its usage counts them";
  EXPECT_EQ(json::parse(server.bodies()[0])["model"], "served-model");
}

TEST(RemoteEngine, AStopStringAndAnErrorInTheStream) {
  ScriptedServer server;
  auto engine = remote_engine(options_for(server));
  Question q;
  server.reply_with({200, transcript("vllm_stream_stop_string.sse")});
  Result result = engine->submit(q.request()).result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(result.finish_reason, "stop_string");
  EXPECT_EQ(result.stop_string, "STOP");
  server.reply_with({200, transcript("vllm_stream_error.sse")});
  result = engine->submit(q.request()).result.get();
  EXPECT_EQ(result.status, Status::kFailed);
  EXPECT_NE(result.error.find("The engine is dead (EngineDeadError)"), std::string::npos) << result.error;
}

// A whole (not streamed) completion whose answer is `text`.
std::string completion(const std::string& text, const std::string& finish_reason) {
  return json({{"object", "chat.completion"},
               {"choices", {{{"index", 0}, {"finish_reason", finish_reason}, {"message", {{"role", "assistant"}, {"content", text}}}}}},
               {"usage", {{"prompt_tokens", 9}, {"completion_tokens", 3}}}})
      .dump();
}

// Choices and a schema reach the server in its forms (RemoteChatBody); an answer the server did not
// constrain fails saying so, and one cut by max_tokens is marked incomplete, as the local engine does.
TEST(RemoteEngine, ConstrainedAnswersAreSentCheckedAndMarked) {
  ScriptedServer server;
  auto engine = remote_engine(options_for(server));
  Question q;
  Request choice = q.request();
  choice.sampling.choices = {"yes", "no"};
  server.reply_with({200, completion("no", "stop"), false});
  Result result = engine->submit(choice).result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(result.text, "no");
  EXPECT_FALSE(result.incomplete);
  EXPECT_EQ(json::parse(server.bodies().back())["structured_outputs"], json({{"choice", {"yes", "no"}}}));
  server.reply_with({200, completion("A red car.", "stop"), false});
  result = engine->submit(choice).result.get();
  EXPECT_EQ(result.status, Status::kFailed);
  EXPECT_NE(result.error.find("not one of the choices"), std::string::npos) << result.error;

  Request schema = q.request();
  schema.sampling.json_schema = R"({"type":"object","properties":{"n":{"type":"integer"}}})";
  server.reply_with({200, completion("There are two.", "stop"), false});
  result = engine->submit(schema).result.get();
  EXPECT_EQ(result.status, Status::kFailed);
  EXPECT_NE(result.error.find("no JSON document"), std::string::npos) << result.error;
  EXPECT_EQ(json::parse(server.bodies().back())["response_format"]["type"], "json_schema");
  server.reply_with({200, completion("{\"n\":1", "length"), false});
  result = engine->submit(schema).result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_TRUE(result.incomplete);
  EXPECT_EQ(result.finish_reason, "length");
}

TEST(RemoteEngine, HttpErrorsFailTheRequestWithTheServersMessage) {
  ScriptedServer server;
  auto engine = remote_engine(options_for(server));
  Question q;
  server.reply_with({400, R"({"error": {"message": "model 'x' is not served", "type": "invalid_request_error"}})", false});
  Result result = engine->submit(q.request()).result.get();
  EXPECT_EQ(result.status, Status::kFailed);
  EXPECT_NE(result.error.find("HTTP 400: model 'x' is not served"), std::string::npos) << result.error;
  server.reply_with({503, R"({"error": {"message": "overloaded"}})", false});
  result = engine->submit(q.request()).result.get();
  EXPECT_EQ(result.status, Status::kFailed);
  EXPECT_NE(result.error.find("HTTP 503: overloaded"), std::string::npos) << result.error;
  // After a 5xx the next request waits for the backoff, then is answered.
  server.reply_with({200, transcript("vllm_stream.sse")});
  const auto start = std::chrono::steady_clock::now();
  result = engine->submit(q.request()).result.get();
  EXPECT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_GE(std::chrono::steady_clock::now() - start, 40ms);
  EXPECT_EQ(engine->stats().failed, 2u);
}

TEST(RemoteEngine, ARefusedConnectionFailsAndAServerThatComesBackIsUsedAgain) {
  int port = 0;
  {
    ScriptedServer probe;  // a port that was free a moment ago, closed again
    port = probe.port();
  }
  RemoteEngineOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  o.model = "served-model";
  o.backoff_min = 50ms;
  o.backoff_max = 100ms;
  auto engine = remote_engine(o);
  Question q;
  for (int i = 0; i < 3; ++i) {
    const Result result = engine->submit(q.request()).result.get();
    EXPECT_EQ(result.status, Status::kFailed);
    EXPECT_NE(result.error.find("the server at " + o.base_url + " failed: "), std::string::npos) << result.error;
  }
  ScriptedServer back(port);
  back.reply_with({200, transcript("vllm_stream.sse")});
  const Result result = engine->submit(q.request()).result.get();
  EXPECT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(engine->stats().failed, 3u);
  engine.reset();  // its kept-alive connection closes before the server stops
}

TEST(RemoteEngine, ASilentServerTimesOut) {
  ScriptedServer server;
  server.reply_with({200, transcript("vllm_stream.sse"), true, 37, 1ms, 800ms});
  RemoteEngineOptions o = options_for(server);
  o.timeout = 300ms;
  auto engine = remote_engine(o);
  Question q;
  const Result result = engine->submit(q.request()).result.get();
  EXPECT_EQ(result.status, Status::kFailed);
  EXPECT_NE(result.error.find("Read"), std::string::npos) << result.error;
}

TEST(RemoteEngine, CancelAndDeadlinesCloseTheConnection) {
  ScriptedServer server;
  ScriptedServer::Reply endless;
  endless.body = transcript("vllm_stream.sse");
  endless.endless = true;
  endless.pause = 10ms;
  server.reply_with(endless);
  auto engine = remote_engine(options_for(server));
  Question q;
  Submission s = engine->submit(q.request());
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(engine->cancel(s.id));
  ASSERT_EQ(s.result.wait_for(2s), std::future_status::ready);
  Result result = s.result.get();
  EXPECT_EQ(result.status, Status::kCancelled);
  EXPECT_FALSE(engine->cancel(s.id)) << "already ended";

  Request r = q.request();
  r.deadline = std::chrono::steady_clock::now() + 200ms;
  result = engine->submit(std::move(r)).result.get();
  EXPECT_EQ(result.status, Status::kExpired);
  for (int i = 0; i < 100 && server.clients_gone() < 2; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server.clients_gone(), 2) << "the server saw both clients go";
  EXPECT_EQ(engine->stats().cancelled, 1u);
  EXPECT_EQ(engine->stats().expired, 1u);
}

TEST(RemoteEngine, SixteenRequestsOverFourKeptAliveConnections) {
  ScriptedServer server;
  server.reply_with({200, transcript("vllm_stream.sse"), true, 200, 5ms});
  RemoteEngineOptions o = options_for(server);
  o.max_inflight = 4;
  auto engine = remote_engine(o);
  Question q;
  std::vector<Submission> submissions;
  for (int i = 0; i < 16; ++i) submissions.push_back(engine->submit(q.request()));
  for (auto& s : submissions) {
    const Result result = s.result.get();
    EXPECT_EQ(result.status, Status::kAnswered) << result.error;
    EXPECT_EQ(result.text, "The image shows a cat on a sofa.");
  }
  EXPECT_EQ(server.most_at_once(), 4);
  EXPECT_LE(server.connections(), 4u) << "each worker keeps its connection";
  EXPECT_EQ(engine->stats().answered, 16u);
}

TEST(RemoteEngine, BadOptionsAreRefusedWithTheReason) {
  RemoteEngineOptions o;
  std::string error;
  o.base_url = "localhost:8000";
  EXPECT_EQ(qwenvl_remote_engine_create(&o, &error), nullptr);
  EXPECT_NE(error.find("must start with http://"), std::string::npos) << error;
  o.base_url = "http://127.0.0.1:1/v1";  // nothing listens: the model cannot be asked for
  EXPECT_EQ(qwenvl_remote_engine_create(&o, &error), nullptr);
  EXPECT_NE(error.find("cannot be asked for its models"), std::string::npos) << error;
  o.model = "m";
  o.max_inflight = 0;
  EXPECT_EQ(qwenvl_remote_engine_create(&o, &error), nullptr);
  EXPECT_NE(error.find("max-inflight"), std::string::npos) << error;
}

}  // namespace
}  // namespace qwenvl::test
