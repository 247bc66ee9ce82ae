// qwenvl-server on loopback, as clients use it: cpp-httplib's client against the built server (its own
// process, QWENVL_SERVER) on the tiny fixture models. Its answers, whole and streamed, are
// transformers' for the fixture's image cases (OUT/reference/cli) and qwenvl-cli's for the same
// request; every bad request of issue 16 gets OpenAI's error object and a 4xx while the server goes
// on serving; 16 clients at once are all answered; /metrics moves; a client gone mid-stream or before
// its whole answer has its request cancelled; stop strings are named (stop_reason); vLLM's
// mm_processor_kwargs resize a request's images; SIGTERM lets the running requests finish, then the server exits 0.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "claimed_png.h"
#include "program_run.h"
#include "server_process.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using qwenvl::test::ServerProcess;

constexpr const char kKey[] = "test-key";
const bool kReadsJpeg =
    std::string(std::getenv("QWENVL_CLI_READS_JPEG") ? std::getenv("QWENVL_CLI_READS_JPEG") : "0") == "1";

fs::path fixtures() { return qwenvl::test::fixtures_dir(); }
std::string model_dir(const std::string& model) { return (fixtures() / "models" / model).string(); }

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[v >> shift & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    out += std::string{kAlphabet[v >> 18 & 63], kAlphabet[v >> 12 & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += std::string{kAlphabet[v >> 18 & 63], kAlphabet[v >> 12 & 63], kAlphabet[v >> 6 & 63], '='};
  }
  return out;
}

json image_part(const std::string& bytes, const std::string& media_type = "image/png") {
  return {{"type", "image_url"}, {"image_url", {{"url", "data:" + media_type + ";base64," + base64(bytes)}}}};
}

// A fixture case of qwenvl-cli's reference (its CLI arguments) as a chat request.
struct Case {
  std::string model, name;
  json reference;
  json request;
};

Case load_case(const std::string& model, const std::string& name) {
  Case c{model,
         name,
         json::parse(qwenvl::test::read_text(fixtures() / "reference" / "cli" / model / (name + ".json"))),
         {}};
  const auto args = c.reference.at("args").get<std::vector<std::string>>();
  json content = json::array();
  std::string system, prompt;
  json request = {{"model", model}, {"return_token_ids", true}};
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    const std::string& flag = args[i];
    const std::string& value = args[i + 1];
    if (flag == "--image")
      content.push_back(image_part(qwenvl::test::read_text(fixtures() / value)));
    else if (flag == "--system")
      system = value;
    else if (flag == "--prompt")
      prompt = value;
    else if (flag == "--temperature")
      request["temperature"] = std::stod(value);
    else if (flag == "--repetition-penalty")
      request["repetition_penalty"] = std::stod(value);
    else if (flag == "--max-new-tokens")
      request["max_tokens"] = std::stoi(value);
    else
      ADD_FAILURE() << "unexpected CLI argument " << flag;
  }
  content.push_back({{"type", "text"}, {"text", prompt}});
  json messages = json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", content}});
  request["messages"] = messages;
  c.request = request;
  return c;
}

// qwenvl-cli --json for the case's arguments.
json cli_answer(const Case& c) {
  std::string command = qwenvl::test::shell_quote(qwenvl::test::env_path("QWENVL_CLI")) + " --json --model " +
                        qwenvl::test::shell_quote(model_dir(c.model));
  for (const auto& a : c.reference.at("args")) {
    const std::string s = a.get<std::string>();
    command += " " + qwenvl::test::shell_quote(s.rfind("media/", 0) == 0 ? (fixtures() / s).string() : s);
  }
  const auto run = qwenvl::test::run_shell(command);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return json::parse(run.out);
}

httplib::Headers auth(const std::string& key = kKey) { return {{"Authorization", "Bearer " + key}}; }

struct Reply {
  int status = 0;
  json body;
};

Reply post(int port, const json& request, const httplib::Headers& headers = auth()) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(300, 0);
  const auto res = client.Post("/v1/chat/completions", headers, request.dump(), "application/json");
  if (!res) {
    ADD_FAILURE() << "no answer: " << httplib::to_string(res.error());
    return {};
  }
  return {res->status, json::parse(res->body, nullptr, false)};
}

// The events of a server-sent-event stream; `done`: it ended with [DONE].
struct Stream {
  int status = 0;
  std::vector<json> events;
  bool done = false;
  std::string text;  // the content deltas joined
};

Stream parse_stream(int status, const std::string& body) {
  Stream s;
  s.status = status;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    const std::string event = body.substr(at, end == std::string::npos ? std::string::npos : end - at);
    at = end == std::string::npos ? body.size() : end + 2;
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    const std::string data = event.substr(6);
    EXPECT_FALSE(s.done) << "an event after [DONE]: " << data;
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    s.events.push_back(json::parse(data));
    const json& e = s.events.back();
    if (e.contains("choices") && !e["choices"].empty() && e["choices"][0]["delta"].contains("content"))
      s.text += e["choices"][0]["delta"]["content"].get<std::string>();
  }
  return s;
}

Stream post_stream(int port, json request) {
  request["stream"] = true;
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(300, 0);
  const auto res = client.Post("/v1/chat/completions", auth(), request.dump(), "application/json");
  if (!res) {
    ADD_FAILURE() << "no answer: " << httplib::to_string(res.error());
    return {};
  }
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  return parse_stream(res->status, res->body);
}

// A metric's value in /metrics' text (0 when absent).
double metric(int port, const std::string& sample) {
  httplib::Client client("127.0.0.1", port);
  const auto res = client.Get("/metrics");
  if (!res || res->status != 200) return -1;
  const size_t at = res->body.find("\n" + sample + " ");
  if (at == std::string::npos) return 0;
  return std::stod(res->body.substr(at + 1 + sample.size() + 1));
}

// A metric's value once it differs from `from` (or after 10 s).
double metric_once_moved(int port, const std::string& sample, double from) {
  double now = from;
  for (int i = 0; i < 500 && now == from; ++i) {
    std::this_thread::sleep_for(20ms);
    now = metric(port, sample);
  }
  return now;
}

json simple_request(int max_tokens = 4) {
  return {{"model", "tiny-a"},
          {"messages", {{{"role", "user"}, {"content", "Say something."}}}},
          {"max_tokens", max_tokens},
          {"temperature", 0}};
}

// A request that runs long: EOS ignored.
json long_request(int max_tokens) {
  json r = simple_request(max_tokens);
  r["ignore_eos"] = true;
  return r;
}

// --- Answers ---------------------------------------------------------------------------------------

class Answers : public ::testing::TestWithParam<std::pair<std::string, std::string>> {
 protected:
  static void SetUpTestSuite() {
    for (const char* model : {"tiny-a", "tiny-b"})
      servers_[model] = new ServerProcess({"--model", model_dir(model), "--api-key", kKey, "--quiet"});
  }
  static void TearDownTestSuite() {
    for (auto& [name, server] : servers_) delete server;
    servers_.clear();
  }
  static std::map<std::string, ServerProcess*> servers_;
};
std::map<std::string, ServerProcess*> Answers::servers_;

TEST_P(Answers, WholeAnswerIsTransformersAndTheClis) {
  const Case c = load_case(GetParam().first, GetParam().second);
  const Reply reply = post(servers_[c.model]->port(), c.request);
  ASSERT_EQ(reply.status, 200) << reply.body.dump();
  const json& choice = reply.body.at("choices").at(0);
  EXPECT_EQ(choice.at("message").at("content"), c.reference.at("text"));
  EXPECT_EQ(choice.at("token_ids"), c.reference.at("token_ids"));
  EXPECT_EQ(reply.body.at("usage").at("prompt_tokens"), c.reference.at("prompt_tokens"));
  EXPECT_EQ(reply.body.at("usage").at("completion_tokens"), c.reference.at("token_ids").size());
  EXPECT_EQ(reply.body.at("model"), c.model);
  const json cli = cli_answer(c);
  EXPECT_EQ(choice.at("message").at("content"), cli.at("text"));
  EXPECT_EQ(choice.at("token_ids"), cli.at("token_ids"));
  EXPECT_EQ(choice.at("finish_reason"), cli.at("finish_reason") == "length" ? "length" : "stop");
}

TEST_P(Answers, StreamedAnswerIsTheSame) {
  const Case c = load_case(GetParam().first, GetParam().second);
  json request = c.request;
  request["stream_options"] = {{"include_usage", true}};
  const Stream s = post_stream(servers_[c.model]->port(), request);
  ASSERT_EQ(s.status, 200);
  ASSERT_TRUE(s.done) << "no [DONE]";
  ASSERT_GE(s.events.size(), 3u);
  EXPECT_EQ(s.events.front().at("choices")[0].at("delta").at("role"), "assistant") << "the role comes first";
  EXPECT_EQ(s.text, c.reference.at("text"));
  const json& finish = s.events[s.events.size() - 2];
  EXPECT_FALSE(finish.at("choices")[0].at("finish_reason").is_null());
  EXPECT_EQ(finish.at("choices")[0].at("token_ids"), c.reference.at("token_ids"));
  const json& usage = s.events.back();
  EXPECT_TRUE(usage.at("choices").empty());
  EXPECT_EQ(usage.at("usage").at("prompt_tokens"), c.reference.at("prompt_tokens"));
  EXPECT_EQ(usage.at("usage").at("completion_tokens"), c.reference.at("token_ids").size());
  const std::string id = s.events.front().at("id");
  for (const json& e : s.events) {
    EXPECT_EQ(e.at("object"), "chat.completion.chunk");
    EXPECT_EQ(e.at("id"), id) << "one id for every chunk";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Answers,
                         ::testing::Values(std::pair<std::string, std::string>{"tiny-a", "one_image"},
                                           std::pair<std::string, std::string>{"tiny-a", "two_images_system"},
                                           std::pair<std::string, std::string>{"tiny-b", "one_image"},
                                           std::pair<std::string, std::string>{"tiny-b", "two_images_system"}),
                         [](const auto& info) {
                           std::string n = info.param.first + "_" + info.param.second;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// --- One server for the rest ----------------------------------------------------------------------

class Server : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(
        {"--model", model_dir("tiny-a"), "--api-key", kKey, "--max-body-bytes", "400000", "--max-batch", "16"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->port(); }
  static ServerProcess* server_;
};
ServerProcess* Server::server_ = nullptr;

TEST_F(Server, SaysWhereItServesWhichModel) {
  EXPECT_EQ(server_->first_line(),
            "qwenvl-server: serving tiny-a on http://127.0.0.1:" + std::to_string(port()) + "\n");
}

TEST_F(Server, ModelsAndHealth) {
  httplib::Client client("127.0.0.1", port());
  auto res = client.Get("/v1/models", auth());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const json models = json::parse(res->body);
  EXPECT_EQ(models.at("object"), "list");
  ASSERT_EQ(models.at("data").size(), 1u);
  EXPECT_EQ(models.at("data")[0].at("id"), "tiny-a");
  EXPECT_EQ(models.at("data")[0].at("object"), "model");
  res = client.Get("/v1/models/tiny-a", auth());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = client.Get("/v1/models/other", auth());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = client.Get("/health");  // no key needed
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body).at("status"), "ok");
}

TEST_F(Server, ImagesAsJpegToo) {
  json request = simple_request();
  const std::string jpeg =
      qwenvl::test::read_text(fs::path(QWENVL_TEST_SOURCE_ROOT) / "tests/tools/server/sample_64x48.jpg");
  request["messages"][0]["content"] = {image_part(jpeg, "image/jpeg"), {{"type", "text"}, {"text", "What is it?"}}};
  const Reply reply = post(port(), request);
  if (kReadsJpeg) {
    EXPECT_EQ(reply.status, 200) << reply.body.dump();
  } else {  // a build without OpenCV decodes PNG only, and says so
    EXPECT_EQ(reply.status, 400);
    EXPECT_NE(reply.body.at("error").at("message").get<std::string>().find("decodes PNG images only"),
              std::string::npos);
  }
}

// The bad requests of issue 16, item 2: OpenAI's error object, the status OpenAI gives, and the
// server goes on serving.
struct BadRequest {
  std::string name;
  int status;
  std::string says;  // part of error.message
  std::string code;  // error.code, "" for null
};

TEST_F(Server, BadRequestsGetOpenAisErrorAndTheServerGoesOn) {
  const std::string png = qwenvl::test::read_text(fixtures() / "media" / "sample_small.png");
  auto with_content = [](json content) {
    json r = simple_request();
    r["messages"][0]["content"] = std::move(content);
    return r;
  };
  struct Sent {
    BadRequest expect;
    std::string body;
    httplib::Headers headers;
  };
  json unknown_model = simple_request();
  unknown_model["model"] = "gpt-4o";
  json no_messages = simple_request();
  no_messages.erase("messages");
  json wrong_type = simple_request();
  wrong_type["max_tokens"] = "many";
  json two_choices = simple_request();
  two_choices["n"] = 2;
  json video_fps = simple_request();
  video_fps["mm_processor_kwargs"] = {{"fps", 2}};
  json upscale_past_the_context = simple_request();
  upscale_past_the_context["mm_processor_kwargs"] = {{"min_pixels", 100'000'000}};
  const std::vector<Sent> cases = {
      {{"malformed_json", 400, "not valid JSON", "invalid_json"}, "{\"model\": ", auth()},
      {{"missing_messages", 400, "messages: is required", ""}, no_messages.dump(), auth()},
      {{"wrong_typed_field", 400, "max_tokens: must be an integer", ""}, wrong_type.dump(), auth()},
      {{"n_two", 400, "only n = 1", ""}, two_choices.dump(), auth()},
      {{"processor_kwargs_fps", 400, "mm_processor_kwargs.fps: samples video frames", ""}, video_fps.dump(), auth()},
      {{"min_pixels_past_the_context", 400, "pixels that the context can hold", ""}, upscale_past_the_context.dump(),
       auth()},
      {{"unknown_model", 404, "The model 'gpt-4o' does not exist", "model_not_found"}, unknown_model.dump(), auth()},
      {{"base64_not_an_image", 400, "not a PNG or JPEG image", "invalid_image"},
       with_content({image_part("hello, not an image")}).dump(),
       auth()},
      {{"png_cut_short", 400, "messages[0].content[0].image_url", "invalid_image"},
       with_content({image_part(png.substr(0, 400))}).dump(),
       auth()},
      {{"image_over_pixel_limit", 400, "30000 x 30000 pixels, over the limit", "invalid_image"},
       with_content({image_part(qwenvl::test::claimed_png(30000, 30000))}).dump(),
       auth()},
      {{"images_together_over_pixel_limit", 400, "pixels together, over the limit", "image_too_large"},
       with_content(
           {image_part(qwenvl::test::claimed_png(10000, 10000)), image_part(qwenvl::test::claimed_png(10000, 10000))})
           .dump(),
       auth()},
      {{"remote_image_url", 400, "remote image URLs are not fetched", ""},
       with_content({{{"type", "image_url"}, {"image_url", {{"url", "https://example.com/cat.png"}}}}}).dump(),
       auth()},
      {{"body_over_limit", 413, "over the limit of 400000 bytes", "body_too_large"},
       with_content({image_part(std::string(320000, 'x'))}).dump(),
       auth()},
      {{"wrong_api_key", 401, "Incorrect API key", "invalid_api_key"}, simple_request().dump(), auth("wrong")},
      {{"no_api_key", 401, "Incorrect API key", "invalid_api_key"}, simple_request().dump(), {}},
  };
  const double rejected_before = metric(port(), "qwenvl_requests_total{outcome=\"rejected\"}");
  for (const Sent& c : cases) {
    httplib::Client client("127.0.0.1", port());
    const auto res = client.Post("/v1/chat/completions", c.headers, c.body, "application/json");
    ASSERT_TRUE(res) << c.expect.name << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, c.expect.status) << c.expect.name << ": " << res->body;
    const json body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << c.expect.name << ": " << res->body;
    const json& e = body["error"];
    for (const char* key : {"message", "type", "param", "code"})
      EXPECT_TRUE(e.contains(key)) << c.expect.name << " " << key;
    EXPECT_NE(e["message"].get<std::string>().find(c.expect.says), std::string::npos) << c.expect.name << ": " << e;
    EXPECT_EQ(e["code"], c.expect.code.empty() ? json(nullptr) : json(c.expect.code)) << c.expect.name;
    EXPECT_EQ(e["type"], "invalid_request_error") << c.expect.name;
  }
  EXPECT_EQ(metric(port(), "qwenvl_requests_total{outcome=\"rejected\"}") - rejected_before, cases.size());
  // Still serving, and still right.
  const Reply reply = post(port(), simple_request());
  EXPECT_EQ(reply.status, 200) << reply.body.dump();
  httplib::Client client("127.0.0.1", port());
  const auto unknown_route = client.Get("/v2/nothing");
  ASSERT_TRUE(unknown_route);
  EXPECT_EQ(unknown_route->status, 404);
  EXPECT_TRUE(json::parse(unknown_route->body).contains("error"));
}

// response_format and structured_outputs reach the engine; a schema it does not support, or one whose
// range lies past the numbers' digit bound, is the client's fault: 400 with the reason, and the server
// goes on.
TEST_F(Server, ConstrainedAnswersAndUnsupportedSchemasGet400) {
  auto with_schema = [](const json& schema) {
    json r = simple_request(40);
    r["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "check"}, {"schema", schema}}}};
    return r;
  };
  Reply reply = post(port(), with_schema({{"type", "object"}, {"properties", {{"ok", {{"type", "boolean"}}}}}, {"required", {"ok"}}}));
  ASSERT_EQ(reply.status, 200) << reply.body.dump();
  const std::string document = reply.body["choices"][0]["message"]["content"];
  EXPECT_TRUE(json::parse(document).at("ok").is_boolean()) << document;
  json choice = simple_request(16);
  choice["structured_outputs"] = {{"choice", {"yes", "no, never"}}};
  reply = post(port(), choice);
  ASSERT_EQ(reply.status, 200) << reply.body.dump();
  const std::string picked = reply.body["choices"][0]["message"]["content"];
  EXPECT_TRUE(picked == "yes" || picked == "no, never") << picked;

  const std::vector<std::pair<json, std::string>> refused = {
      {{{"type", "string"}, {"pattern", "a+"}}, "'pattern'"},
      {{{"type", "object"}, {"properties", {{"n", {{"anyOf", {{{"type", "null"}}}}}}}}}, "/properties/n"},
      {{{"type", "integer"}, {"minimum", 1e17}}, "9999999999999999"},
  };
  for (const auto& [schema, says] : refused) {
    reply = post(port(), with_schema(schema));
    EXPECT_EQ(reply.status, 400) << schema << ": " << reply.body.dump();
    ASSERT_TRUE(reply.body.contains("error")) << reply.body.dump();
    EXPECT_EQ(reply.body["error"]["type"], "invalid_request_error");
    EXPECT_NE(reply.body["error"]["message"].get<std::string>().find(says), std::string::npos) << reply.body.dump();
  }
  EXPECT_EQ(post(port(), simple_request()).status, 200) << "still serving";
}

TEST_F(Server, MetricsMoveWithAnAnswer) {
  const double answered = metric(port(), "qwenvl_requests_total{outcome=\"answered\"}");
  const double tokens = metric(port(), "qwenvl_generated_tokens_total");
  const double ttft = metric(port(), "qwenvl_time_to_first_token_seconds_count");
  const double latency = metric(port(), "qwenvl_request_latency_seconds_count");
  const Reply reply = post(port(), long_request(6));
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(metric(port(), "qwenvl_requests_total{outcome=\"answered\"}"), answered + 1);
  EXPECT_EQ(metric(port(), "qwenvl_generated_tokens_total"), tokens + 6);
  EXPECT_EQ(metric(port(), "qwenvl_time_to_first_token_seconds_count"), ttft + 1);
  EXPECT_EQ(metric(port(), "qwenvl_request_latency_seconds_count"), latency + 1);
  EXPECT_GT(metric(port(), "qwenvl_kv_blocks_total"), 0);
  EXPECT_EQ(metric(port(), "qwenvl_http_requests_in_flight"), 0);
}

// Sixteen clients at once for a bounded time, half streamed: each sends request after request for
// two seconds (a new connection each), and every request is answered with the answer it gets alone. (Once flaky under load: Debian's httplib
// listened with a backlog of 5; see Startup.AStoppedServerStillHoldsABurstOfConnections.)
TEST_F(Server, SixteenClientsAtOnceAreAllAnswered) {
  const Reply alone = post(port(), simple_request(8));
  ASSERT_EQ(alone.status, 200);
  const std::string expected = alone.body["choices"][0]["message"]["content"];
  const auto until = std::chrono::steady_clock::now() + 2s;
  std::vector<std::future<std::vector<std::string>>> clients;
  for (int i = 0; i < 16; ++i)
    clients.push_back(std::async(std::launch::async, [i, until] {
      std::vector<std::string> answers;
      do {
        if (i % 2 == 0) {
          const Reply r = post(port(), simple_request(8));
          answers.push_back(r.status == 200 ? r.body["choices"][0]["message"]["content"].get<std::string>()
                                            : "HTTP " + std::to_string(r.status));
        } else {
          const Stream s = post_stream(port(), simple_request(8));
          answers.push_back(s.status == 200 && s.done ? s.text : "stream HTTP " + std::to_string(s.status));
        }
      } while (std::chrono::steady_clock::now() < until);
      return answers;
    }));
  size_t answered = 0;
  for (auto& c : clients)
    for (const std::string& a : c.get()) {
      EXPECT_EQ(a, expected) << "greedy answers do not depend on the batch";
      ++answered;
    }
  EXPECT_GE(answered, 16u);
  std::printf("16 clients for 2 s: %zu requests answered\n", answered);
}

// vLLM's mm_processor_kwargs resize this request's images: fewer pixels, fewer prompt tokens.
TEST_F(Server, ProcessorKwargsResizeThisRequestsImages) {
  json request = simple_request(1);
  request["messages"][0]["content"] = {
      image_part(qwenvl::test::read_text(fixtures() / "media" / "sample_small.png")),  // 200x140
      {{"type", "text"}, {"text", "What is it?"}}};
  const Reply plain = post(port(), request);
  ASSERT_EQ(plain.status, 200) << plain.body.dump();
  request["mm_processor_kwargs"] = {{"min_pixels", 784}, {"max_pixels", 56 * 56}};
  const Reply small = post(port(), request);
  ASSERT_EQ(small.status, 200) << small.body.dump();
  const int tokens = plain.body["usage"]["prompt_tokens"];
  EXPECT_EQ(small.body["usage"]["prompt_tokens"], tokens - 35 + 2) << "5x7 image tokens (140x196 pixels) become 1x2 (28x56)";
}

// A stop string: OpenAI's finish_reason "stop" and vLLM's stop_reason naming it, streamed and not;
// an answer ended otherwise says null.
TEST_F(Server, AStopStringIsNamedInStopReason) {
  const Reply free = post(port(), simple_request(8));
  ASSERT_EQ(free.status, 200) << free.body.dump();
  EXPECT_TRUE(free.body["choices"][0].at("stop_reason").is_null());
  const std::string full = free.body["choices"][0]["message"]["content"];
  ASSERT_GT(full.size(), 2u);
  size_t from = full.size() / 2;  // a whole character from the middle of the answer
  while (from > 0 && (static_cast<unsigned char>(full[from]) & 0xC0) == 0x80) --from;
  size_t to = from + 1;
  while (to < full.size() && (static_cast<unsigned char>(full[to]) & 0xC0) == 0x80) ++to;
  const std::string stop = full.substr(from, to - from);
  json request = simple_request(8);
  request["stop"] = {"never in the answer", stop};
  const Reply whole = post(port(), request);
  ASSERT_EQ(whole.status, 200) << whole.body.dump();
  const json& choice = whole.body["choices"][0];
  EXPECT_EQ(choice.at("finish_reason"), "stop");
  EXPECT_EQ(choice.at("stop_reason"), stop);
  EXPECT_EQ(choice.at("message").at("content"), full.substr(0, full.find(stop)));
  const Stream streamed = post_stream(port(), request);
  ASSERT_EQ(streamed.status, 200);
  ASSERT_TRUE(streamed.done);
  const json& finish = streamed.events.back().at("choices")[0];
  EXPECT_EQ(finish.at("finish_reason"), "stop");
  EXPECT_EQ(finish.at("stop_reason"), stop);
  EXPECT_EQ(streamed.text, full.substr(0, full.find(stop)));
}

// A client that reads the first chunks of a stream and hangs up: the engine ends its request as
// cancelled (counted), long before the tokens it asked for.
TEST_F(Server, AClientGoneMidStreamIsCancelledInTheEngine) {
  const double cancelled = metric(port(), "qwenvl_requests_total{outcome=\"cancelled\"}");
  const double tokens = metric(port(), "qwenvl_generated_tokens_total");
  httplib::Client client("127.0.0.1", port());
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = auth();
  req.headers.emplace("Content-Type", "application/json");
  json body = long_request(4000);
  body["stream"] = true;
  req.body = body.dump();
  int chunks = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  const auto res = client.send(req);
  EXPECT_FALSE(res) << "the client stopped reading";
  EXPECT_EQ(chunks, 3);
  EXPECT_EQ(metric_once_moved(port(), "qwenvl_requests_total{outcome=\"cancelled\"}", cancelled), cancelled + 1)
      << "the request was not cancelled";
  EXPECT_LT(metric(port(), "qwenvl_generated_tokens_total") - tokens, 4000);
  EXPECT_EQ(metric(port(), "qwenvl_http_requests_in_flight"), 0);
}

// A client that gives up waiting for a whole (not streamed) answer and hangs up: the engine ends its
// request as cancelled (counted), long before the tokens it asked for, and the server goes on.
TEST_F(Server, AClientGoneBeforeItsWholeAnswerIsCancelledInTheEngine) {
  const double cancelled = metric(port(), "qwenvl_requests_total{outcome=\"cancelled\"}");
  const double tokens = metric(port(), "qwenvl_generated_tokens_total");
  httplib::Client client("127.0.0.1", port());
  client.set_read_timeout(0, 500'000);  // then it closes the connection
  const auto res = client.Post("/v1/chat/completions", auth(), long_request(7000).dump(), "application/json");
  ASSERT_FALSE(res) << "answered within half a second: " << res->body;
  EXPECT_EQ(res.error(), httplib::Error::Read);
  EXPECT_EQ(metric_once_moved(port(), "qwenvl_requests_total{outcome=\"cancelled\"}", cancelled), cancelled + 1)
      << "the request was not cancelled";
  EXPECT_LT(metric(port(), "qwenvl_generated_tokens_total") - tokens, 7000);
  for (int i = 0; i < 100 && metric(port(), "qwenvl_http_requests_in_flight") != 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(metric(port(), "qwenvl_http_requests_in_flight"), 0);
  const Reply after = post(port(), simple_request());
  EXPECT_EQ(after.status, 200) << after.body.dump();
}

// --- Shutdown --------------------------------------------------------------------------------------

// SIGTERM: the running stream goes on to its last token, new requests are refused, then exit 0.
TEST(Shutdown, SigtermFinishesTheRunningRequestsThenExitsZero) {
  ServerProcess server({"--model", model_dir("tiny-a")});
  const int port = server.port();
  std::promise<void> first_chunk;
  std::atomic<bool> signalled{false};
  std::string streamed;
  auto running = std::async(std::launch::async, [&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(300, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.headers.emplace("Content-Type", "application/json");
    json body = long_request(1500);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    req.body = body.dump();
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      streamed.append(data, n);
      if (!signalled.exchange(true)) first_chunk.set_value();
      return true;
    };
    const auto res = client.send(req);
    return res ? res->status : -1;
  });
  first_chunk.get_future().wait();
  server.signal(SIGTERM);
  // Draining (the stream has ~1500 tokens to go): /health says so, and a new request is refused.
  int health = 200;
  for (int i = 0; i < 500 && health == 200; ++i) {
    httplib::Client client("127.0.0.1", port);
    const auto res = client.Get("/health");
    health = res ? res->status : -1;
    if (health == 200) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(health, 503);
  {
    httplib::Client client("127.0.0.1", port);
    const auto res = client.Post("/v1/chat/completions", simple_request().dump(), "application/json");
    ASSERT_TRUE(res) << "refused while the stream still runs: " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 503) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "shutting_down");
  }
  EXPECT_EQ(running.get(), 200);
  const Stream s = parse_stream(200, streamed);
  EXPECT_TRUE(s.done) << "the stream was cut";
  ASSERT_FALSE(s.events.empty());
  EXPECT_EQ(s.events.back().at("usage").at("completion_tokens"), 1500) << "every token of the running request";
  EXPECT_EQ(server.wait_exit(60s), 0) << server.errors();
  EXPECT_NE(server.errors().find("taking no more"), std::string::npos) << server.errors();
}

// --ssl-cert / --ssl-key: the same API over HTTPS (cpp-httplib as Debian builds it, with OpenSSL), with a
// self-signed certificate made for the test by the openssl command.
TEST(Startup, ServesHttpsWithACertificate) {
  const fs::path dir = fs::temp_directory_path() / ("qwenvl_server_tls_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto made =
      qwenvl::test::run_shell("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -keyout " +
                              qwenvl::test::shell_quote((dir / "key.pem").string()) + " -out " +
                              qwenvl::test::shell_quote((dir / "cert.pem").string()));
  if (made.exit_code != 0) {
    fs::remove_all(dir);
    GTEST_SKIP() << "no openssl command to make a certificate: " << made.err;
  }
  {
    ServerProcess server({"--model", model_dir("tiny-a"), "--ssl-cert", (dir / "cert.pem").string(), "--ssl-key",
                          (dir / "key.pem").string()});
    EXPECT_NE(server.first_line().find("on https://127.0.0.1:"), std::string::npos) << server.first_line();
    httplib::SSLClient client("127.0.0.1", server.port());
    client.enable_server_certificate_verification(false);  // self-signed
    client.set_read_timeout(300, 0);
    const auto res = client.Post("/v1/chat/completions", simple_request().dump(), "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["usage"]["completion_tokens"], 4);
    httplib::Client plain("127.0.0.1", server.port());
    EXPECT_FALSE(plain.Get("/health")) << "plain HTTP on the HTTPS port";
  }
  fs::remove_all(dir);
}

// A burst of clients is held by the kernel until the server accepts them: with the server stopped
// (SIGSTOP: nothing is accepted), 64 connections at once all finish their handshake. Debian's
// cpp-httplib listens with a backlog of 5, which holds 6: the rest stall in SYN_SENT, and on a loaded
// machine a stalled client's request could outlast the server's read timeout ("connection closed").
TEST(Startup, AStoppedServerStillHoldsABurstOfConnections) {
  ServerProcess server({"--model", model_dir("tiny-a")});
  int somaxconn = 64;
  if (std::FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "r")) {
    if (std::fscanf(f, "%d", &somaxconn) != 1) somaxconn = 64;
    std::fclose(f);
  }
  const int burst = std::min(64, somaxconn);
  server.signal(SIGSTOP);
  std::vector<int> sockets;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(server.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < burst; ++i) {
    const int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(sock, 0);
    sockets.push_back(sock);
    ::connect(sock, reinterpret_cast<const sockaddr*>(&address), sizeof address);  // EINPROGRESS
  }
  // A handshake the kernel takes ends at once on loopback; one it drops waits a second for a retry.
  int connected = 0;
  const auto deadline = std::chrono::steady_clock::now() + 500ms;
  for (int sock : sockets) {
    pollfd p{sock, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    int error = 0;
    socklen_t size = sizeof error;
    if (::poll(&p, 1, std::max<int>(0, static_cast<int>(left.count()))) == 1 &&
        ::getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0)
      ++connected;
  }
  for (int sock : sockets) ::close(sock);
  server.signal(SIGCONT);
  EXPECT_EQ(connected, burst) << "connections the stopped server's accept queue held";
  httplib::Client client("127.0.0.1", server.port());
  const auto health = client.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
}

// A port another server holds is refused at start (exit 3), before the model loads, never shared
// with it (httplib's SO_REUSEPORT would have let the kernel hand each server half the connections).
TEST(Startup, APortInUseIsRefused) {
  ServerProcess first({"--model", model_dir("tiny-a")});
  try {
    ServerProcess second({"--model", model_dir("tiny-a")}, first.port());
    ADD_FAILURE() << "a second server serves on port " << first.port() << ": " << second.first_line();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
}

TEST(Startup, BadFlagsAndModelsSayWhyInOneLine) {
  for (const auto& [args, code, says] : std::vector<std::tuple<std::vector<std::string>, int, std::string>>{
           {{"--model", "/nonexistent/model"}, 2, "cannot load the model"},
           {{"--model", model_dir("tiny-a"), "--max-batch", "0"}, 1, "--max-batch must be at least 1"},
           {{"--model", model_dir("tiny-a"), "--dtype", "int3"}, 1, "--dtype 'int3'"},
           {{"--model", model_dir("tiny-a"), "--devices", "cpu=1MiB"}, 2, "does not fit on cpu=1MiB"},
           {{"--model", model_dir("tiny-a"), "--placement", "spread"}, 1, "--placement: unknown placement"},
           {{"--model", model_dir("tiny-a"), "--ssl-cert", "/nonexistent.pem"}, 1, "--ssl-key"},
           {{"--model", model_dir("tiny-a"), "--overlap-decode", "maybe"}, 1, "--overlap-decode 'maybe'"}}) {
    std::string command = qwenvl::test::shell_quote(qwenvl::test::env_path("QWENVL_SERVER")) + " --port 0";
    for (const auto& a : args) command += " " + qwenvl::test::shell_quote(a);
    const auto run = qwenvl::test::run_shell(command);
    EXPECT_EQ(run.exit_code, code) << says << ": " << run.err;
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_NE(run.err.find(says), std::string::npos) << run.err;
  }
}

TEST(Startup, HelpNamesEveryEngineOption) {
  const auto run =
      qwenvl::test::run_shell(qwenvl::test::shell_quote(qwenvl::test::env_path("QWENVL_SERVER")) + " --help");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  for (const char* flag : {"--model",
                           "--host",
                           "--port",
                           "--served-model-name",
                           "--api-key",
                           "--ssl-cert",
                           "--ssl-key",
                           "--device",
                           "--devices",
                           "--placement",
                           "--dtype",
                           "--max-context",
                           "--min-pixels",
                           "--max-pixels",
                           "--max-batch",
                           "--kv-cache-bytes",
                           "--kv-block-size",
                           "--default-max-new-tokens",
                           "--no-cuda-graphs",
                           "--overlap-decode",
                           "--time-phases",
                           "--max-body-bytes",
                           "--max-image-pixels",
                           "--http-threads"})
    EXPECT_NE(run.out.find(flag), std::string::npos) << flag;
}

TEST(Startup, ServedModelNameAndAnyKey) {
  ServerProcess server({"--model", model_dir("tiny-a") + "/", "--served-model-name", "vision"});
  EXPECT_NE(server.first_line().find("serving vision on"), std::string::npos);
  json request = simple_request();
  request["model"] = "vision";
  EXPECT_EQ(post(server.port(), request, {}).status, 200) << "no --api-key: no key asked";
}

}  // namespace
