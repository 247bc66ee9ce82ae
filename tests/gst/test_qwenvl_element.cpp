// The qwenvl element through GstHarness on the CPU, with the tiny-a fixture model and the real
// engine: the answers' four forms (meta, message, signal, text pad) agree with each other and with
// the engine API asked the same question about the same frame; pixel formats with padded strides;
// sync and async behaviour, drops, interval sampling by timestamps, flush, EOS, state cycling,
// engine sharing, bad values, and a plugin that registers and documents itself without the engine.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "element_rig.h"
#include "gstqwenvlmeta.h"
#include "qwenvl/engine.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using namespace qwenvl::test;

std::string tiny_b() { return (fixtures_dir() / "models" / "tiny-b").string(); }

constexpr GstClockTime kFrame = GST_SECOND / 30;

// The engine API asked directly, as the CLI asks it.
qwenvl::Result ask_engine(const TestFrame& frame, const std::string& prompt, int max_new_tokens,
                          const std::string& system_prompt = "") {
  qwenvl::EngineOptions options;
  options.model_dir = tiny_a();
  auto engine = qwenvl::Engine::create(options);
  qwenvl::Request request;
  request.images.push_back(frame.view());
  request.prompt = prompt;
  request.system_prompt = system_prompt;
  request.sampling.temperature = 0.0;
  request.sampling.max_new_tokens = max_new_tokens;
  return engine->submit(std::move(request)).result.get();
}

struct FormatCase {
  GstVideoFormat format;
  int width, height, padding;
};

class Agreement : public ::testing::TestWithParam<FormatCase> {};

TEST_P(Agreement, MetaMessageSignalAndTextAgreeWithTheEngineApi) {
  const FormatCase c = GetParam();
  const TestFrame frame = make_frame(c.format, c.width, c.height, c.padding);
  const std::string prompt = "What is in this image?";
  Rig rig("mode=sync temperature=0 max-new-tokens=8 stream-id=cam0", /*with_text=*/true);
  g_object_set(rig.element, "prompt", prompt.c_str(), nullptr);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());

  GstBuffer* in = frame.buffer(2 * GST_SECOND, kFrame);
  ASSERT_EQ(gst_harness_push(rig.video, in), GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(rig.video);
  ASSERT_NE(out, nullptr);

  // The video is untouched: same pixels (padding included), same time.
  GstMapInfo map;
  ASSERT_TRUE(gst_buffer_map(out, &map, GST_MAP_READ));
  EXPECT_EQ(std::vector<uint8_t>(map.data, map.data + map.size), frame.bytes);
  gst_buffer_unmap(out, &map);
  EXPECT_EQ(GST_BUFFER_PTS(out), 2 * GST_SECOND);

  ASSERT_EQ(gst_buffer_count_qwenvl_meta(out), 1u);
  const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(rig.signalled.size(), 1u);
  EXPECT_TRUE(same_fields(messages[0], meta));
  EXPECT_TRUE(same_fields(rig.signalled[0], meta));
  EXPECT_EQ(str(meta, "prompt"), prompt);
  EXPECT_EQ(str(meta, "stream-id"), "cam0");
  EXPECT_EQ(u64(meta, "pts"), 2 * GST_SECOND);
  EXPECT_GT(u64(meta, "request-id"), 0u);
  EXPECT_GT(u64(meta, "latency"), 0u);
  EXPECT_LE(u64(meta, "ttft"), u64(meta, "latency"));

  // The engine API, asked about the same pixels: the same ids and text.
  const qwenvl::Result direct = ask_engine(frame, prompt, 8);
  ASSERT_EQ(direct.status, qwenvl::Status::kAnswered) << direct.error;
  EXPECT_EQ(token_ids(meta), direct.token_ids);
  EXPECT_EQ(str(meta, "text"), direct.text);
  int generated = -1, prompt_tokens = -1;
  gst_structure_get_int(meta, "generated-tokens", &generated);
  gst_structure_get_int(meta, "prompt-tokens", &prompt_tokens);
  EXPECT_EQ(generated, static_cast<int>(direct.token_ids.size()));
  EXPECT_EQ(prompt_tokens, direct.prompt_tokens);
  EXPECT_EQ(str(meta, "finish-reason"), direct.finish_reason);

  // text_src: the same text, at the outgoing buffer's time, with its duration.
  GstBuffer* text = rig.next_text_buffer();
  ASSERT_NE(text, nullptr);
  ASSERT_TRUE(gst_buffer_map(text, &map, GST_MAP_READ));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(map.data), map.size), direct.text);
  gst_buffer_unmap(text, &map);
  EXPECT_EQ(GST_BUFFER_PTS(text), 2 * GST_SECOND);
  EXPECT_EQ(GST_BUFFER_DURATION(text), kFrame);
  GstCaps* text_caps = gst_pad_get_current_caps(rig.text->sinkpad);
  ASSERT_NE(text_caps, nullptr);
  GstCaps* utf8 = gst_caps_from_string("text/x-raw,format=utf8");
  EXPECT_TRUE(gst_caps_is_equal(text_caps, utf8));
  gst_caps_unref(utf8);
  gst_caps_unref(text_caps);

  gst_buffer_unref(text);
  gst_buffer_unref(out);
  free_all(messages);
}

INSTANTIATE_TEST_SUITE_P(Formats, Agreement,
                         ::testing::Values(FormatCase{GST_VIDEO_FORMAT_RGB, 33, 17, 0}, FormatCase{GST_VIDEO_FORMAT_RGB, 33, 17, 5},
                                           FormatCase{GST_VIDEO_FORMAT_BGRx, 31, 20, 12}, FormatCase{GST_VIDEO_FORMAT_NV12, 33, 17, 3},
                                           FormatCase{GST_VIDEO_FORMAT_I420, 35, 21, 7}),
                         [](const auto& info) {
                           return std::string(gst_video_format_to_string(info.param.format)) + "_" +
                                  std::to_string(info.param.width) + "x" + std::to_string(info.param.height) + "_pad" +
                                  std::to_string(info.param.padding);
                         });

TEST(QwenVLElement, PlaceholdersAreExpandedInPromptAndSystemPrompt) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=6 stream-id=cam7", false);
  g_object_set(rig.element, "prompt", "What happens on {stream_id} at {timestamp}?", "system-prompt",
               "You watch camera {stream_id}.", nullptr);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(GST_SECOND * 61 + GST_MSECOND * 500, kFrame)), GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(rig.video);
  const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(str(meta, "prompt"), "What happens on cam7 at 0:01:01.500?");
  const qwenvl::Result direct = ask_engine(frame, "What happens on cam7 at 0:01:01.500?", 6, "You watch camera cam7.");
  EXPECT_EQ(token_ids(meta), direct.token_ids);
  gst_buffer_unref(out);
}

// ignore-eos: a copy of tiny-a whose generation_config names as its EOS the third token tiny-a
// answers with stops there, unless ignore-eos is set; with it the answer runs on to max-new-tokens,
// the same ids as tiny-a's own.
TEST(QwenVLElement, IgnoreEosGeneratesPastTheEndOfSequence) {
  namespace fs = std::filesystem;
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  constexpr int kTokens = 12;
  const qwenvl::Result direct = ask_engine(frame, "Describe this image.", kTokens);
  ASSERT_EQ(direct.token_ids.size(), static_cast<size_t>(kTokens)) << "tiny-a ended before max-new-tokens";
  const int32_t eos = direct.token_ids[2];
  const auto first_eos = std::find(direct.token_ids.begin(), direct.token_ids.end(), eos) - direct.token_ids.begin();
  std::string pattern = (fs::temp_directory_path() / "qwenvl-ignore-eos-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path model(pattern);
  for (const auto& entry : fs::directory_iterator(tiny_a()))
    if (entry.path().filename() != "generation_config.json") fs::create_symlink(entry.path(), model / entry.path().filename());
  nlohmann::json generation = nlohmann::json::parse(std::ifstream(fs::path(tiny_a()) / "generation_config.json"));
  generation["eos_token_id"] = eos;
  std::ofstream(model / "generation_config.json") << generation.dump();

  for (const bool ignore : {false, true}) {
    Rig rig("mode=sync temperature=0 max-new-tokens=12 model=" + model.string() +
            (ignore ? " ignore-eos=true" : ""));
    gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(rig.video);
    const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
    ASSERT_NE(meta, nullptr);
    const std::vector<int32_t> ids = token_ids(meta);
    if (ignore) {
      EXPECT_EQ(ids, direct.token_ids);
    } else {
      ASSERT_LE(ids.size(), static_cast<size_t>(first_eos + 1)) << "the answer went past its EOS";
      EXPECT_TRUE(std::equal(ids.begin(), ids.end(), direct.token_ids.begin()));
    }
    gst_buffer_unref(out);
  }
  fs::remove_all(model);
}

TEST(QwenVLElement, SyncAnswersEveryFrameAskedByTimestampInterval) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGBA, 24, 24, 0);
  // interval 1 s over frames 250 ms apart with no durations and a 0/1 rate: frames 0, 1, 2, 3 s.
  Rig rig("mode=sync temperature=0 max-new-tokens=3 interval=1000000000", /*with_text=*/true);
  gst_harness_set_src_caps_str(rig.video, frame.caps("0/1").c_str());
  for (int i = 0; i <= 12; ++i) {
    const GstClockTime pts = i * 250 * GST_MSECOND;
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(pts, GST_CLOCK_TIME_NONE)), GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(rig.video);
    const bool asked = i % 4 == 0;
    ASSERT_EQ(gst_buffer_count_qwenvl_meta(out), asked ? 1u : 0u) << "frame " << i;
    if (asked) {
      EXPECT_EQ(u64(gst_buffer_get_qwenvl_meta(out), "pts"), pts);
    }
    gst_buffer_unref(out);
  }
  EXPECT_EQ(rig.stat("asked"), 4u);
  EXPECT_EQ(rig.stat("answered"), 4u);
  EXPECT_EQ(rig.stat("dropped"), 0u);
  // The text pad follows the video: a text buffer per frame while the caption holds (here: from the
  // first answer on), each as long as the gap between frames.
  // (The first frame's length is unknown: no duration, no rate, no earlier frame.)
  int texts = 0;
  while (GstBuffer* t = gst_harness_try_pull(rig.text)) {
    if (texts > 0) {
      EXPECT_EQ(GST_BUFFER_DURATION(t), 250 * GST_MSECOND) << "text " << texts;
    }
    ++texts;
    gst_buffer_unref(t);
  }
  EXPECT_EQ(texts, 13);
}

TEST(QwenVLElement, SyncModeAddsItsLatencyToTheLatencyQuery) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 16, 16, 0);
  Rig rig("mode=sync", false);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  GstQuery* q = gst_query_new_latency();
  ASSERT_TRUE(gst_pad_peer_query(rig.video->sinkpad, q));
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(q, &live, &min, &max);
  EXPECT_GT(min, 0u);  // the warm-up request's time at least
  gst_query_unref(q);

  Rig async_rig("mode=async", false);
  gst_harness_set_src_caps_str(async_rig.video, frame.caps().c_str());
  q = gst_query_new_latency();
  ASSERT_TRUE(gst_pad_peer_query(async_rig.video->sinkpad, q));
  gst_query_parse_latency(q, &live, &min, &max);
  EXPECT_EQ(min, 0u);  // async adds nothing
  gst_query_unref(q);
}

// A request long enough to hold the engine busy while the video goes on.
constexpr const char* kBusy = "temperature=0 max-new-tokens=4000 prompt=Describe";

TEST(QwenVLElement, AsyncNeverBlocksTheVideoAndCountsDrops) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig(std::string("mode=async drop-policy=skip-while-busy max-pending=1 ") + kBusy, false);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 30; ++i) {
    const auto before = std::chrono::steady_clock::now();
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(i * kFrame, kFrame)), GST_FLOW_OK);
    EXPECT_LT(std::chrono::steady_clock::now() - before, 200ms) << "push " << i << " waited for the engine";
    GstBuffer* out = gst_harness_pull(rig.video);
    EXPECT_EQ(GST_BUFFER_PTS(out), i * kFrame);
    gst_buffer_unref(out);
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // The engine was busy throughout: nothing answered, one asked, every other due frame dropped.
  EXPECT_EQ(rig.stat("answered"), 0u) << "the long request ended within "
                                     << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
  EXPECT_EQ(rig.stat("asked"), 1u);
  EXPECT_EQ(rig.stat("dropped"), 29u);
  EXPECT_EQ(rig.stat("queue-depth"), 1u);
  std::vector<GstStructure*> drops = rig.messages("qwenvl-dropped");
  EXPECT_EQ(drops.size(), 29u);
  free_all(drops);
}

TEST(QwenVLElement, DropOldestReplacesOnlyRequestsNotYetRunning) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig(std::string("mode=async drop-policy=drop-oldest max-pending=2 ") + kBusy, false);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(i * kFrame, kFrame)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(rig.video));
  }
  // Each of the 4 frames past max-pending is dropped: it either replaced a request still waiting
  // for admission (asked, that one dropped) or found both running (not asked).
  EXPECT_EQ(rig.stat("dropped"), 4u);
  EXPECT_GE(rig.stat("asked"), 2u);
  for (int i = 0; i < 100 && rig.stat("queue-depth") != 2u; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(rig.stat("queue-depth"), 2u);
  EXPECT_EQ(rig.stat("cancelled"), 0u);  // drops are not counted twice
  for (int i = 0; i < 100 && rig.stat("engine-running") != 2u; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(rig.stat("engine-running"), 2u) << "both kept requests run: none was cancelled once admitted";
}

// An engine far slower than the camera: drop-oldest never cancels the running request, so the
// stream is answered at the engine's pace instead of starving (issue 15: 0 answers of 4500).
TEST(QwenVLElement, DropOldestStreamIsAnsweredWhenTheEngineIsSlow) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig("mode=async drop-policy=drop-oldest max-pending=1 drain-on-eos=false temperature=0 max-new-tokens=48 "
          "prompt=Describe",
          false);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  int pushed = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (rig.stat("answered") < 3 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(pushed * kFrame, kFrame)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(rig.video));
    ++pushed;
    std::this_thread::sleep_for(1ms);  // a camera far faster than one answer
  }
  EXPECT_GE(rig.stat("answered"), 3u) << pushed << " frames pushed";
  EXPECT_GT(pushed, 3 * 3) << "the engine was not slower than the frames";
  EXPECT_EQ(rig.stat("failed"), 0u);
  EXPECT_EQ(rig.stat("cancelled"), 0u);
  // Every frame (each one due) ends answered or dropped, once the last request has ended.
  for (int i = 0; i < 3000 && rig.stat("queue-depth") != 0u; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(rig.stat("answered") + rig.stat("dropped"), static_cast<guint64>(pushed));
}

TEST(QwenVLElement, FlushCancelsPendingRequests) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig(std::string("mode=async ") + kBusy, false);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(rig.video));
  ASSERT_EQ(rig.stat("queue-depth"), 1u);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_stop(TRUE)));
  for (int i = 0; i < 300 && rig.stat("cancelled") == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(rig.stat("cancelled"), 1u);
  EXPECT_EQ(rig.stat("queue-depth"), 0u);
  EXPECT_EQ(rig.stat("answered"), 0u);
  // After the flush the element asks again and nothing from before reaches the new buffers.
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_segment(&segment)));
  g_object_set(rig.element, "max-new-tokens", 2, nullptr);
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(rig.video);
  EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u);
  gst_buffer_unref(out);
  EXPECT_EQ(rig.stat("asked"), 2u);
}

TEST(QwenVLElement, EosWaitsForPendingAnswersInAsyncMode) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig("mode=async temperature=0 max-new-tokens=12", /*with_text=*/true);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(rig.video));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));
  // The answer came out before EOS went on: message, signal and text (no buffer left for a meta).
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(rig.signalled.size(), 1u);
  EXPECT_TRUE(same_fields(messages[0], rig.signalled[0]));
  GstBuffer* text = gst_harness_try_pull(rig.text);
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(GST_BUFFER_PTS(text), kFrame);  // right after the last video buffer
  gst_buffer_unref(text);
  // EOS on both pads, after the answer.
  EXPECT_TRUE(pull_events_saw_eos(rig.text));
  free_all(messages);
}

TEST(QwenVLElement, EosCancelsPendingWhenNotDraining) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig(std::string("mode=async drain-on-eos=false ") + kBusy, false);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(rig.video));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(rig.stat("cancelled"), 1u);
  EXPECT_EQ(rig.stat("answered"), 0u);
}

TEST(QwenVLElement, EmitPartialPostsTextAsTokensArrive) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=10 emit-partial=true", false);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(rig.video);
  const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
  ASSERT_NE(meta, nullptr);
  std::vector<GstStructure*> partial = rig.messages("qwenvl-partial");
  std::string joined;
  for (auto* p : partial) {
    EXPECT_EQ(u64(p, "request-id"), u64(meta, "request-id"));
    joined += str(p, "text");
  }
  EXPECT_EQ(joined, str(meta, "text"));
  free_all(partial);
  gst_buffer_unref(out);
}

TEST(QwenVLElement, TwoElementsShareOneEngine) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig a("mode=sync temperature=0 max-new-tokens=2 stream-id=a", false);
  Rig b("mode=sync temperature=0 max-new-tokens=2 stream-id=b", false);
  EXPECT_NE(a.stat("engine-instance"), 0u);
  EXPECT_EQ(a.stat("engine-instance"), b.stat("engine-instance"));
  for (Rig* r : {&a, &b}) {
    gst_harness_set_src_caps_str(r->video, frame.caps().c_str());
    ASSERT_EQ(gst_harness_push(r->video, frame.buffer(0, kFrame)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(r->video));
  }
  // One engine saw both streams' requests (and one warm-up).
  EXPECT_EQ(a.stat("engine-submitted"), 3u);
  EXPECT_EQ(b.stat("engine-submitted"), 3u);

  // Another engine-id gets its own engine; the same engine-id with another model is an error.
  Rig c("engine-id=other", false);
  EXPECT_NE(c.stat("engine-instance"), a.stat("engine-instance"));
  GstElement* d = gst_element_factory_make("qwenvl", nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(d, bus);
  g_object_set(d, "engine-id", "other", "model", tiny_b().c_str(), nullptr);
  EXPECT_EQ(gst_element_set_state(d, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(m, nullptr);
  GError* error = nullptr;
  gst_message_parse_error(m, &error, nullptr);
  EXPECT_NE(std::string(error->message).find("engine-id 'other' already runs model"), std::string::npos) << error->message;
  g_error_free(error);
  gst_message_unref(m);
  gst_element_set_state(d, GST_STATE_NULL);
  gst_element_set_bus(d, nullptr);
  gst_object_unref(bus);
  gst_object_unref(d);
}

TEST(QwenVLElement, StateCyclesLoadAndReleaseTheEngine) {
  init_gst();
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_I420, 20, 20, 0);
  guint64 previous = 0;
  for (int cycle = 0; cycle < 3; ++cycle) {
    Rig rig("mode=sync temperature=0 max-new-tokens=2", false);
    const guint64 instance = rig.stat("engine-instance");
    EXPECT_NE(instance, 0u);
    EXPECT_NE(instance, previous) << "the engine of the last cycle was not released";
    previous = instance;
    gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(rig.video));
    EXPECT_EQ(rig.stat("answered"), 1u);
    ASSERT_EQ(gst_element_set_state(rig.element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    EXPECT_EQ(rig.stat("engine-instance"), 0u);
  }
  // One element cycled NULL-PLAYING-NULL with its requests in flight.
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  g_object_set(e, "model", tiny_a().c_str(), nullptr);
  for (int cycle = 0; cycle < 3; ++cycle) {
    ASSERT_EQ(gst_element_set_state(e, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
    ASSERT_EQ(gst_element_set_state(e, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  EXPECT_EQ(GST_OBJECT_REFCOUNT_VALUE(e), 1);
  gst_object_unref(e);
}

// The ERROR message of an element that fails NULL->READY.
std::string ready_error(const std::string& properties) {
  init_gst();
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  gchar** pairs = g_strsplit(properties.c_str(), " ", -1);
  for (gchar** p = pairs; *p; ++p) {
    gchar** kv = g_strsplit(*p, "=", 2);
    gst_util_set_object_arg(G_OBJECT(e), kv[0], kv[1]);
    g_strfreev(kv);
  }
  g_strfreev(pairs);
  std::string text = "(no error message)";
  if (gst_element_set_state(e, GST_STATE_READY) != GST_STATE_CHANGE_FAILURE) text = "(READY succeeded)";
  if (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
    GError* error = nullptr;
    gchar* debug = nullptr;
    gst_message_parse_error(m, &error, &debug);
    text = std::string(error->message) + " | " + (debug ? debug : "");
    g_error_free(error);
    g_free(debug);
    gst_message_unref(m);
  }
  gst_element_set_state(e, GST_STATE_NULL);
  gst_element_set_bus(e, nullptr);
  gst_object_unref(bus);
  gst_object_unref(e);
  return text;
}

TEST(QwenVLElement, BadSettingsFailReadyWithMessagesThatSayWhatToFix) {
  EXPECT_NE(ready_error("").find("set model to a Qwen2.5-VL model directory"), std::string::npos);
  const std::string missing = ready_error("model=/nonexistent/model-dir");
  EXPECT_NE(missing.find("/nonexistent/model-dir"), std::string::npos) << missing;
  EXPECT_NE(missing.find("does not exist"), std::string::npos) << missing;
  const std::string device = ready_error("model=" + tiny_a() + " device=tpu");
  EXPECT_NE(device.find("unknown device 'tpu'"), std::string::npos) << device;
  const std::string library = ready_error("model=" + tiny_a() + " engine-library=/nonexistent/libqwenvl-engine.so");
  EXPECT_NE(library.find("/nonexistent/libqwenvl-engine.so"), std::string::npos) << library;
  EXPECT_NE(library.find("No such file"), std::string::npos) << library;  // dlerror()
}

TEST(QwenVLElement, BadPropertyValuesAreRejected) {
  init_gst();
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  // GObject refuses values outside the documented ranges (with a warning) and keeps the old one.
  g_object_set(e, "temperature", -5.0, "top-p", 1.5, "max-pending", 0u, "max-new-tokens", -3, nullptr);
  gdouble temperature = 0, top_p = 0;
  guint max_pending = 0;
  gint max_new_tokens = 1;
  g_object_get(e, "temperature", &temperature, "top-p", &top_p, "max-pending", &max_pending, "max-new-tokens", &max_new_tokens,
               nullptr);
  EXPECT_EQ(temperature, -1.0);
  EXPECT_EQ(top_p, -1.0);
  EXPECT_EQ(max_pending, 1u);
  EXPECT_EQ(max_new_tokens, 0);
  gst_util_set_object_arg(G_OBJECT(e), "mode", "sync");
  gint mode = -1;
  g_object_get(e, "mode", &mode, nullptr);
  EXPECT_EQ(mode, 1);
  gst_util_set_object_arg(G_OBJECT(e), "mode", "sometimes");  // an unknown nick changes nothing
  g_object_get(e, "mode", &mode, nullptr);
  EXPECT_EQ(mode, 1);
  gst_util_set_object_arg(G_OBJECT(e), "stop-strings", "<\"END\", \"###\">");
  GValue stops = G_VALUE_INIT;
  g_value_init(&stops, GST_TYPE_ARRAY);
  g_object_get_property(G_OBJECT(e), "stop-strings", &stops);
  ASSERT_EQ(gst_value_array_get_size(&stops), 2u);
  EXPECT_STREQ(g_value_get_string(gst_value_array_get_value(&stops, 1)), "###");
  g_value_unset(&stops);
  gst_object_unref(e);
}

TEST(QwenVLElement, UnsupportedCapsAreRefused) {
  init_gst();
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  g_object_set(e, "model", tiny_a().c_str(), nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=YUY2,width=16,height=16,framerate=30/1");
  GstBuffer* b = gst_buffer_new_allocate(nullptr, 16 * 16 * 2, nullptr);
  EXPECT_EQ(gst_harness_push(h, b), GST_FLOW_NOT_NEGOTIATED);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(m, nullptr);
  GError* error = nullptr;
  gst_message_parse_error(m, &error, nullptr);
  const std::string text = error->message;
  EXPECT_NE(text.find("RGB, RGBA, RGBx, BGR, BGRA, BGRx, NV12, I420"), std::string::npos) << text;
  EXPECT_NE(text.find("YUY2"), std::string::npos) << text;
  g_error_free(error);
  gst_message_unref(m);
  gst_harness_teardown(h);
  gst_element_set_bus(e, nullptr);
  gst_object_unref(bus);
  gst_object_unref(e);
}

std::string run(const std::string& command, int* status) {
  gchar* out = nullptr;
  gchar* err = nullptr;
  GError* error = nullptr;
  gint wait = -1;
  if (!g_spawn_command_line_sync(command.c_str(), &out, &err, &wait, &error)) {
    std::string m = error->message;
    g_error_free(error);
    *status = -1;
    return m;
  }
  std::string text = std::string(out ? out : "") + (err ? err : "");
  g_free(out);
  g_free(err);
  *status = g_spawn_check_wait_status(wait, nullptr) ? 0 : 1;
  return text;
}

TEST(QwenVLPlugin, GstInspectDocumentsItWithoutLoadingTheEngine) {
  init_gst();
  // The plugin never links the engine (nor libtorch): it loads it at NULL->READY.
  const char* plugin = std::getenv("QWENVL_PLUGIN_FILE");
  ASSERT_NE(plugin, nullptr);
  int status = 0;
  const std::string needed = run(std::string("readelf -d ") + plugin, &status);
  ASSERT_EQ(status, 0) << needed;
  EXPECT_EQ(needed.find("libqwenvl-engine"), std::string::npos) << needed;
  EXPECT_EQ(needed.find("libtorch"), std::string::npos) << needed;
  EXPECT_EQ(needed.find("libc10"), std::string::npos) << needed;

  // A wrong engine library changes nothing for gst-inspect.
  g_setenv("QWENVL_ENGINE_LIBRARY", "/nonexistent/libqwenvl-engine.so", TRUE);
  const std::string inspect = run("gst-inspect-1.0 qwenvl", &status);
  g_unsetenv("QWENVL_ENGINE_LIBRARY");
  ASSERT_EQ(status, 0) << inspect;
  for (const char* name : {"model", "prompt", "system-prompt", "max-new-tokens", "temperature", "top-k", "top-p", "min-p",
                           "repetition-penalty", "seed", "stop-strings", "interval", "mode", "drop-policy", "max-pending",
                           "device", "devices", "placement", "DEVICE[@PROFILE][=CAP]", "replicas", "dtype", "engine-id", "emit-partial", "stats", "engine-library", "text_src",
                           "clip-frames", "clip-duration", "roi", "roi-labels", "history-size", "min-pixels",
                           "max-pixels", "overlay", "caption-duration", "\"ask\"",
                           "\"result\"", "gst-launch-1.0", "skip-while-busy", "drop-oldest", "NV12", "I420", "BGRx"})
    EXPECT_NE(inspect.find(name), std::string::npos) << name << " missing from:\n" << inspect;

  // ... and going to READY with it is an ERROR naming the library.
  g_setenv("QWENVL_ENGINE_LIBRARY", "/nonexistent/libqwenvl-engine.so", TRUE);
  const std::string error = ready_error("model=" + tiny_a());
  g_unsetenv("QWENVL_ENGINE_LIBRARY");
  EXPECT_NE(error.find("could not load its engine library /nonexistent/libqwenvl-engine.so"), std::string::npos) << error;
}

TEST(QwenVLMeta, SurvivesBufferCopies) {
  init_gst();
  GstBuffer* b = gst_buffer_new();
  GstStructure* fields = gst_structure_new("x", "text", G_TYPE_STRING, "a cat", "request-id", G_TYPE_UINT64, guint64{7}, nullptr);
  gst_buffer_add_qwenvl_meta(b, fields);
  gst_buffer_add_qwenvl_meta(b, fields);
  GstBuffer* copy = gst_buffer_copy(b);
  EXPECT_EQ(gst_buffer_count_qwenvl_meta(copy), 2u);
  EXPECT_EQ(str(gst_buffer_get_qwenvl_meta(copy), "text"), "a cat");
  EXPECT_EQ(u64(gst_buffer_get_qwenvl_meta(copy), "request-id"), 7u);
  EXPECT_TRUE(gst_meta_info_is_custom(gst_qwenvl_meta_get_info()));
  gst_structure_free(fields);
  gst_buffer_unref(copy);
  gst_buffer_unref(b);
}

}  // namespace
