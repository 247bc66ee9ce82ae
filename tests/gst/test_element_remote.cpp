// The element with remote-url: qwenvl-server (its own process, QWENVL_SERVER) on the tiny-a fixture
// answers it through libqwenvl-remote with the same text, ids and prompt tokens as the local
// engine asked directly (greedy, sync mode, RGB and NV12 frames with padded rows); partial text
// streams; a stop string is named as the local engine names it; 16 requests in flight at once are
// all answered; the server killed mid-request and restarted on its port: the element posts qwenvl-failed (with the reason) for each request it
// lost and answers again once the server is back, without restarting the pipeline.
#include <signal.h>

#include <thread>

#include "element_rig.h"
#include "server_process.h"

namespace qwenvl::test {
namespace {

using namespace std::chrono_literals;
constexpr GstClockTime kFrame = GST_SECOND / 10;

std::string url_of(const ServerProcess& server) { return "http://127.0.0.1:" + std::to_string(server.port()) + "/v1"; }

TEST(ElementRemote, SameAnswersAsTheLocalEngineInSyncMode) {
  ServerProcess server({"--model", tiny_a()});
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_NV12}) {
    SCOPED_TRACE(gst_video_format_to_string(format));
    const TestFrame frame = make_frame(format, 30, 22, 4, 3);
    Rig rig("mode=sync temperature=0 max-new-tokens=8 interval=0 emit-partial=true remote-url=" + url_of(server));
    gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
    GstStructure* meta = rig.answer_of(frame, 0);
    ASSERT_NE(meta, nullptr) << server.errors();
    Request request;
    request.images.push_back(frame.view());
    request.prompt = "Describe this image.";
    const Result local = ask_engine(std::move(request), 8);
    ASSERT_EQ(local.status, Status::kAnswered) << local.error;
    EXPECT_EQ(str(meta, GST_QWENVL_FIELD_TEXT), local.text);
    EXPECT_EQ(token_ids(meta), local.token_ids);
    EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), local.prompt_tokens);
    std::vector<GstStructure*> partial = rig.messages("qwenvl-partial");
    std::string joined;
    for (auto* p : partial) joined += str(p, "text");
    EXPECT_EQ(joined, local.text) << "partial text streamed from the server's events";
    free_all(partial);
    gst_structure_free(meta);
    EXPECT_EQ(rig.stat("answered"), 1u);
  }
}

// stop-strings through the server: the answer ends before the stop string, and its meta and
// message say which one ended it (finish-reason "stop_string", stop-string), read back from the
// server's stop_reason.
TEST(ElementRemote, AStopStringIsNamedInTheAnswer) {
  ServerProcess server({"--model", tiny_a()});
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 0, 3);
  Request request;
  request.images.push_back(frame.view());
  request.prompt = "Describe this image.";
  const Result local = ask_engine(std::move(request), 8);
  ASSERT_EQ(local.status, Status::kAnswered) << local.error;
  size_t at = local.text.size() / 2;  // a letter from the second half of the answer
  while (at < local.text.size() && !g_ascii_isalnum(local.text[at])) ++at;
  ASSERT_LT(at, local.text.size()) << "no letter to stop at in '" << local.text << "'";
  const std::string stop(1, local.text[at]);
  Rig rig("mode=sync temperature=0 max-new-tokens=8 interval=0 remote-url=" + url_of(server));
  rig.set("stop-strings=<\"" + stop + "\">");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstStructure* meta = answer_of(rig, frame, 0);
  ASSERT_NE(meta, nullptr) << server.errors();
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_FINISH_REASON), "stop_string");
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_STOP_STRING), stop);
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_TEXT), local.text.substr(0, local.text.find(stop)));
  std::vector<GstStructure*> results = rig.messages("qwenvl-result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(str(results[0], GST_QWENVL_FIELD_STOP_STRING), stop);
  free_all(results);
  gst_structure_free(meta);
}

TEST(ElementRemote, SixteenRequestsInFlightAreAllAnswered) {
  ServerProcess server({"--model", tiny_a()});
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 28, 28, 0, 1);
  Rig rig("mode=async max-pending=16 remote-max-inflight=16 temperature=0 max-new-tokens=6 interval=0 remote-url=" +
          url_of(server));
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(i * kFrame, kFrame)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(rig.video));
  }
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));  // drain-on-eos: every answer first
  EXPECT_EQ(rig.signalled.size(), 16u) << server.errors();
  EXPECT_EQ(rig.stat("answered"), 16u);
  EXPECT_EQ(rig.stat("failed"), 0u);
  std::vector<GstStructure*> failed = rig.messages("qwenvl-failed");
  EXPECT_TRUE(failed.empty());
  free_all(failed);
}

TEST(ElementRemote, AServerKilledMidRequestAndRestartedIsUsedAgain) {
  auto server = std::make_unique<ServerProcess>(std::vector<std::string>{"--model", tiny_a()});
  const int port = server->port();
  const std::string url = url_of(*server);
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 28, 28, 0, 2);
  Rig rig("mode=sync temperature=0 max-new-tokens=4 interval=0 remote-url=" + url);
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstClockTime pts = 0;
  GstStructure* meta = rig.answer_of(frame, pts);
  ASSERT_NE(meta, nullptr) << server->errors();
  gst_structure_free(meta);

  // A long answer, the server killed while it generates: the request is lost.
  g_object_set(rig.element, "max-new-tokens", 2000, nullptr);
  std::thread killer([&] {
    std::this_thread::sleep_for(300ms);
    server->signal(SIGKILL);
  });
  int unanswered = 0;
  meta = rig.answer_of(frame, pts += kFrame);
  killer.join();
  EXPECT_EQ(meta, nullptr) << "answered before the kill: make the answer longer";
  if (meta) gst_structure_free(meta);
  else ++unanswered;
  server->wait_exit(5s);
  server.reset();

  // While it is down: failed at once or after the backoff, never hanging the stream.
  g_object_set(rig.element, "max-new-tokens", 4, nullptr);
  meta = rig.answer_of(frame, pts += kFrame);
  EXPECT_EQ(meta, nullptr);
  if (meta) gst_structure_free(meta);
  else ++unanswered;

  server = std::make_unique<ServerProcess>(std::vector<std::string>{"--model", tiny_a()}, port);
  int tries = 0;
  for (meta = nullptr; meta == nullptr && tries < 20; ++tries) {
    meta = rig.answer_of(frame, pts += kFrame);
    if (meta == nullptr) ++unanswered;
  }
  ASSERT_NE(meta, nullptr) << "no answer once the server was back: " << server->errors();
  gst_structure_free(meta);

  std::vector<GstStructure*> failed = rig.messages("qwenvl-failed");
  EXPECT_EQ(static_cast<int>(failed.size()), unanswered) << "one qwenvl-failed for each request lost";
  for (auto* f : failed) {
    EXPECT_EQ(str(f, "status"), "failed");
    EXPECT_NE(str(f, "error").find("the server at " + url), std::string::npos) << str(f, "error");
  }
  free_all(failed);
  EXPECT_EQ(rig.stat("failed"), static_cast<guint64>(unanswered));
  EXPECT_EQ(rig.stat("answered"), 2u);
}

TEST(ElementRemote, ElementsShareARemoteEngineOnlyForTheSameUrlAndModel) {
  ServerProcess server({"--model", tiny_a()});
  const std::string url = url_of(server);
  Rig a("remote-url=" + url + " remote-model=tiny-a");
  Rig b("remote-url=" + url + " remote-model=tiny-a");
  Rig c("remote-url=" + url + "/ remote-model=tiny-a");  // another URL string: its own engine
  for (Rig* rig : {&a, &b, &c}) ASSERT_EQ(gst_element_set_state(rig->element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ(a.stat("engine-instance"), b.stat("engine-instance"));
  EXPECT_NE(a.stat("engine-instance"), c.stat("engine-instance"));
  for (Rig* rig : {&a, &b, &c}) gst_element_set_state(rig->element, GST_STATE_NULL);
}

TEST(ElementRemote, AnUnreachableServerFailsReadyWithTheReason) {
  init_gst();
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  g_object_set(e, "remote-url", "http://127.0.0.1:1/v1", nullptr);  // no model: none needed
  EXPECT_EQ(gst_element_set_state(e, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
  GstMessage* error = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(error, nullptr);
  GError* why = nullptr;
  gst_message_parse_error(error, &why, nullptr);
  EXPECT_NE(std::string(why->message).find("could not use the server at http://127.0.0.1:1/v1"), std::string::npos)
      << why->message;
  EXPECT_NE(std::string(why->message).find("cannot be asked for its models"), std::string::npos) << why->message;
  g_error_free(why);
  gst_message_unref(error);
  gst_element_set_state(e, GST_STATE_NULL);
  gst_element_set_bus(e, nullptr);
  gst_object_unref(bus);
  gst_object_unref(e);
}

}  // namespace
}  // namespace qwenvl::test
