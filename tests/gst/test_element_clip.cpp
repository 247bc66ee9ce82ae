// clip-frames / clip-duration: N frames chosen by their timestamps over the window, sent as one
// clip with their real timestamps; the answer carries the window; interval decides when a clip starts.
#include "element_rig.h"

namespace qwenvl::test {
namespace {

TEST(ElementClip, FramesChosenByTimestampsAndSentWithThem) {
  // Irregular timestamps: a frame counter would pick other frames. Targets 0, 500, 1000 ms: the
  // first frames at or after them are at 0, 600 and 1100 ms.
  const std::vector<GstClockTime> times_ms = {0, 100, 150, 600, 650, 900, 1100, 1200};
  std::vector<TestFrame> frames;
  for (size_t i = 0; i < times_ms.size(); ++i) frames.push_back(make_frame(GST_VIDEO_FORMAT_I420, 30, 20, 2, static_cast<int>(i)));
  Rig rig("mode=sync temperature=0 max-new-tokens=6 clip-frames=3 clip-duration=1000000000 interval=10000000000");
  gst_harness_set_src_caps_str(rig.video, frames[0].caps("0/1").c_str());
  std::vector<GstStructure*> metas;
  size_t answered_at = 0;
  for (size_t i = 0; i < times_ms.size(); ++i) {
    GstBuffer* out = rig.push_pull(frames[i].buffer(times_ms[i] * GST_MSECOND, GST_CLOCK_TIME_NONE));
    ASSERT_NE(out, nullptr);
    if (gst_buffer_count_qwenvl_meta(out) > 0) {
      answered_at = i;
      metas = metas_of(out);
    }
    gst_buffer_unref(out);
  }
  ASSERT_EQ(metas.size(), 1u);
  EXPECT_EQ(answered_at, 6u) << "sync: the clip is answered on its last frame (1100 ms)";
  const GstStructure* meta = metas[0];
  EXPECT_EQ(u64(meta, GST_QWENVL_FIELD_WINDOW_START), 0u);
  EXPECT_EQ(u64(meta, GST_QWENVL_FIELD_WINDOW_END), 1100 * GST_MSECOND);
  EXPECT_EQ(u32(meta, GST_QWENVL_FIELD_CLIP_FRAMES), 3u);
  EXPECT_EQ(u64(meta, GST_QWENVL_FIELD_PTS), 0u);
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(rig.signalled.size(), 1u);
  EXPECT_TRUE(same_fields(meta, messages[0]));
  EXPECT_TRUE(same_fields(meta, rig.signalled[0]));

  // The engine API asked about frames 0, 3, 6 with their timestamps: the same answer.
  Request request;
  for (size_t i : {0u, 3u, 6u}) request.clip.push_back(frames[i].view(static_cast<double>(times_ms[i]) / 1000.0));
  request.prompt = "Describe this image.";
  const Result direct = ask_engine(std::move(request), 6);
  ASSERT_EQ(direct.status, Status::kAnswered) << direct.error;
  EXPECT_EQ(token_ids(meta), direct.token_ids);
  EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), direct.prompt_tokens);
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_TEXT), direct.text);
  free_all(metas);
  free_all(messages);
}

TEST(ElementClip, IntervalStartsEachClip) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 24, 16, 0);
  // 2-frame clips over 200 ms, one starting per second, frames every 100 ms for 3 s.
  Rig rig("mode=sync temperature=0 max-new-tokens=3 clip-frames=2 clip-duration=200000000 interval=1000000000");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  for (int i = 0; i < 30; ++i) {
    GstBuffer* out = rig.push_pull(frame.buffer(i * 100 * GST_MSECOND, 100 * GST_MSECOND));
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), (i % 10 == 2) ? 1u : 0u) << "frame " << i;
    gst_buffer_unref(out);
  }
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 3u);
  for (size_t k = 0; k < messages.size(); ++k) {
    EXPECT_EQ(u64(messages[k], GST_QWENVL_FIELD_WINDOW_START), k * GST_SECOND);
    EXPECT_EQ(u64(messages[k], GST_QWENVL_FIELD_WINDOW_END), k * GST_SECOND + 200 * GST_MSECOND);
    EXPECT_EQ(u32(messages[k], GST_QWENVL_FIELD_CLIP_FRAMES), 2u);
  }
  free_all(messages);
}

TEST(ElementClip, OneFrameIsASingleImage) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 24, 16, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=3 clip-frames=1 interval=0");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstBuffer* out = rig.push_pull(frame.buffer(0, 100 * GST_MSECOND));
  ASSERT_EQ(gst_buffer_count_qwenvl_meta(out), 1u);
  const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
  EXPECT_FALSE(gst_structure_has_field(meta, GST_QWENVL_FIELD_WINDOW_START));
  Request request;
  request.images.push_back(frame.view());
  request.prompt = "Describe this image.";
  EXPECT_EQ(token_ids(meta), ask_engine(std::move(request), 3).token_ids);
  gst_buffer_unref(out);
}

TEST(ElementClip, FlushDropsAPartialClip) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 24, 16, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=3 clip-frames=2 clip-duration=500000000 interval=0");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  gst_buffer_unref(rig.push_pull(frame.buffer(0, 100 * GST_MSECOND)));  // clip started at 0
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_segment(&segment)));
  // After the flush a new clip starts at 2 s; the old one (0 s) never completes.
  for (GstClockTime t : {2000, 2100, 2500}) gst_buffer_unref(rig.push_pull(frame.buffer(t * GST_MSECOND, 100 * GST_MSECOND)));
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(u64(messages[0], GST_QWENVL_FIELD_WINDOW_START), 2 * GST_SECOND);
  EXPECT_EQ(u64(messages[0], GST_QWENVL_FIELD_WINDOW_END), 2500 * GST_MSECOND);
  free_all(messages);
}

constexpr GstClockTime kFrame = 100 * GST_MSECOND;

// Records whether EOS had left the element's src pad when each result signal came.
struct EosOrder {
  bool eos_passed = false;
  std::vector<bool> result_after_eos;

  explicit EosOrder(GstElement* element) {
    GstPad* src = gst_element_get_static_pad(element, "src");
    gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                      +[](GstPad*, GstPadProbeInfo* info, gpointer self) {
                        if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS)
                          static_cast<EosOrder*>(self)->eos_passed = true;
                        return GST_PAD_PROBE_OK;
                      },
                      this, nullptr);
    gst_object_unref(src);
    g_signal_connect(element, "result", G_CALLBACK(+[](GstElement*, const GstStructure*, gpointer self) {
                       auto* order = static_cast<EosOrder*>(self);
                       order->result_after_eos.push_back(order->eos_passed);
                     }),
                     this);
  }
};

// The engine API asked about `frames[i]` for i in `which`, as one clip with their timestamps.
Result ask_clip_directly(const std::vector<TestFrame>& frames, std::initializer_list<size_t> which, int max_new_tokens) {
  Request request;
  for (size_t i : which) request.clip.push_back(frames[i].view(static_cast<double>(i * kFrame) / GST_SECOND));
  request.prompt = "Describe this image.";
  return ask_engine(std::move(request), max_new_tokens);
}

std::vector<TestFrame> distinct_frames(size_t n) {
  std::vector<TestFrame> frames;
  for (size_t i = 0; i < n; ++i) frames.push_back(make_frame(GST_VIDEO_FORMAT_I420, 30, 20, 2, static_cast<int>(i) + 1));
  return frames;
}

// Pushes frames [from, to) at 10 fps (frame i at i x 100 ms) through a rig whose caps are set,
// dropping what comes out.
void push_frames(Rig& rig, const std::vector<TestFrame>& frames, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) gst_buffer_unref(rig.push_pull(frames[i].buffer(i * kFrame, kFrame)));
}

// The element messages named `name` whose clip-frames is `n`.
std::vector<GstStructure*> with_clip_frames(std::vector<GstStructure*>& all, guint n) {
  std::vector<GstStructure*> out;
  for (GstStructure* s : all)
    if (u32(s, GST_QWENVL_FIELD_CLIP_FRAMES) == n) out.push_back(s);
  return out;
}

TEST(ElementClip, PartialClipAtEosIsAnsweredBeforeEos) {
  // 8 consecutive frames in clips of 3: [0 1 2] [3 4 5], and [6 7] left when EOS comes.
  const std::vector<TestFrame> frames = distinct_frames(8);
  Rig rig("mode=sync temperature=0 max-new-tokens=6 clip-frames=3 clip-duration=0 interval=0", /*with_text=*/true);
  EosOrder order(rig.element);
  gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
  for (size_t i = 0; i < frames.size(); ++i) {
    GstBuffer* out = rig.push_pull(frames[i].buffer(i * kFrame, kFrame));
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), (i == 2 || i == 5) ? 1u : 0u) << "frame " << i;
    gst_buffer_unref(out);
  }
  ASSERT_EQ(rig.signalled.size(), 2u);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));

  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 3u);
  ASSERT_EQ(rig.signalled.size(), 3u);
  EXPECT_EQ(order.result_after_eos, std::vector<bool>({false, false, false})) << "the partial clip's answer came after EOS";
  EXPECT_TRUE(order.eos_passed);
  const GstStructure* last = messages[2];
  EXPECT_TRUE(same_fields(last, rig.signalled[2]));
  EXPECT_EQ(u32(last, GST_QWENVL_FIELD_CLIP_FRAMES), 2u);
  EXPECT_EQ(u64(last, GST_QWENVL_FIELD_WINDOW_START), 6 * kFrame);
  EXPECT_EQ(u64(last, GST_QWENVL_FIELD_WINDOW_END), 7 * kFrame);
  EXPECT_EQ(u64(last, GST_QWENVL_FIELD_PTS), 6 * kFrame);
  // The same answer as the engine asked about frames 6 and 7 with their timestamps.
  const Result direct = ask_clip_directly(frames, {6, 7}, 6);
  ASSERT_EQ(direct.status, Status::kAnswered) << direct.error;
  EXPECT_EQ(token_ids(last), direct.token_ids);
  EXPECT_EQ(i32(last, GST_QWENVL_FIELD_PROMPT_TOKENS), direct.prompt_tokens);
  EXPECT_EQ(str(last, GST_QWENVL_FIELD_TEXT), direct.text);
  // text_src: the last text buffer is the partial clip's answer, right after the last frame, then EOS.
  GstBuffer* text = nullptr;
  while (GstBuffer* b = gst_harness_try_pull(rig.text)) {
    if (text) gst_buffer_unref(text);
    text = b;
  }
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(GST_BUFFER_PTS(text), 8 * kFrame);
  const std::vector<uint8_t> bytes = buffer_bytes(text);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), direct.text);
  gst_buffer_unref(text);
  EXPECT_TRUE(pull_events_saw_eos(rig.text));
  free_all(messages);
}

TEST(ElementClip, SingleFrameLeftAtEosIsAnsweredInAsyncMode) {
  // 7 frames in clips of 3, async (draining at EOS): [6] alone is left, a one-frame clip (the
  // engine repeats it to fill the temporal patch of 2, as transformers does).
  const std::vector<TestFrame> frames = distinct_frames(7);
  Rig rig("mode=async max-pending=16 temperature=0 max-new-tokens=5 clip-frames=3 clip-duration=0 interval=0");
  EosOrder order(rig.element);
  gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
  push_frames(rig, frames, 0, frames.size());
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(order.result_after_eos, std::vector<bool>({false, false, false}));
  EXPECT_EQ(rig.stat("dropped"), 0u);
  std::vector<GstStructure*> single = with_clip_frames(messages, 1);
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(u64(single[0], GST_QWENVL_FIELD_WINDOW_START), 6 * kFrame);
  EXPECT_EQ(u64(single[0], GST_QWENVL_FIELD_WINDOW_END), 6 * kFrame);
  const Result direct = ask_clip_directly(frames, {6}, 5);
  ASSERT_EQ(direct.status, Status::kAnswered) << direct.error;
  EXPECT_EQ(token_ids(single[0]), direct.token_ids);
  EXPECT_EQ(i32(single[0], GST_QWENVL_FIELD_PROMPT_TOKENS), direct.prompt_tokens);
  EXPECT_EQ(with_clip_frames(messages, 3).size(), 2u);
  free_all(messages);
}

TEST(ElementClip, PartialClipMatchesAStreamOfThatClipLength) {
  // The 2 frames left at EOS by clip-frames=3 get the answer that clip-frames=2 gives the same frames.
  const std::vector<TestFrame> frames = distinct_frames(5);
  std::vector<int32_t> partial_ids, full_ids;
  {
    Rig rig("mode=sync temperature=0 max-new-tokens=6 clip-frames=3 clip-duration=0 interval=0");
    gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
    push_frames(rig, frames, 0, 5);
    ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));
    std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
    ASSERT_EQ(messages.size(), 2u);
    EXPECT_EQ(u32(messages[1], GST_QWENVL_FIELD_CLIP_FRAMES), 2u);
    partial_ids = token_ids(messages[1]);
    free_all(messages);
  }
  {
    Rig rig("mode=sync temperature=0 max-new-tokens=6 clip-frames=2 clip-duration=0 interval=0");
    gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
    push_frames(rig, frames, 3, 5);
    std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(u64(messages[0], GST_QWENVL_FIELD_WINDOW_START), 3 * kFrame);
    full_ids = token_ids(messages[0]);
    free_all(messages);
  }
  EXPECT_FALSE(partial_ids.empty());
  EXPECT_EQ(partial_ids, full_ids);
}

TEST(ElementClip, PartialClipAtEosWithoutDrainIsDroppedWithAMessage) {
  const std::vector<TestFrame> frames = distinct_frames(2);
  Rig rig("mode=async drain-on-eos=false temperature=0 max-new-tokens=3 clip-frames=3 clip-duration=0 interval=0");
  gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
  push_frames(rig, frames, 0, 2);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));
  std::vector<GstStructure*> dropped = rig.messages("qwenvl-dropped");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(str(dropped[0], "reason"), "eos-without-drain");
  EXPECT_EQ(u32(dropped[0], GST_QWENVL_FIELD_CLIP_FRAMES), 2u);
  EXPECT_EQ(u64(dropped[0], GST_QWENVL_FIELD_WINDOW_START), 0u);
  EXPECT_EQ(u64(dropped[0], GST_QWENVL_FIELD_WINDOW_END), kFrame);
  EXPECT_EQ(rig.stat("asked"), 0u);
  EXPECT_EQ(rig.stat("dropped"), 1u);
  EXPECT_TRUE(rig.signalled.empty());
  free_all(dropped);
}

TEST(ElementClip, FlushedPartialClipIsNotAskedAtEos) {
  const std::vector<TestFrame> frames = distinct_frames(3);
  Rig rig("mode=sync temperature=0 max-new-tokens=3 clip-frames=3 clip-duration=0 interval=0");
  gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
  push_frames(rig, frames, 0, 2);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_segment(&segment)));
  // After the flush one frame at 2 s, then EOS: only that frame's clip is asked.
  gst_buffer_unref(rig.push_pull(frames[2].buffer(2 * GST_SECOND, kFrame)));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(u32(messages[0], GST_QWENVL_FIELD_CLIP_FRAMES), 1u);
  EXPECT_EQ(u64(messages[0], GST_QWENVL_FIELD_WINDOW_START), 2 * GST_SECOND);
  EXPECT_EQ(rig.stat("asked"), 1u);
  std::vector<GstStructure*> dropped = rig.messages("qwenvl-dropped");
  EXPECT_TRUE(dropped.empty()) << "a flush is a deliberate reset";
  free_all(messages);
}

TEST(ElementClip, StopDiscardsThePartialClipAndAnswersOfTheLastRun) {
  // async: frame 0 starts a clip of 2 and carries an `ask` question, whose answer comes back while
  // no buffer follows to carry it. The element stops (PAUSED->READY) and restarts: neither that
  // answer nor the partial clip comes out of the new run.
  const std::vector<TestFrame> frames = distinct_frames(2);
  Rig rig("mode=async max-pending=4 temperature=0 max-new-tokens=3 clip-frames=2 clip-duration=0 interval=0");
  gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
  guint64 id = 0;
  g_signal_emit_by_name(rig.element, "ask", "Anything?", &id);
  ASSERT_NE(id, 0u);
  gst_buffer_unref(rig.push_pull(frames[0].buffer(0, kFrame)));
  for (int waited = 0; rig.stat("answered") < 1 && waited < 60000; waited += 10) g_usleep(10000);
  ASSERT_EQ(rig.stat("answered"), 1u);
  std::vector<GstStructure*> before = rig.messages("qwenvl-result");
  EXPECT_TRUE(before.empty()) << "the answer waits for a buffer";
  free_all(before);
  ASSERT_EQ(gst_element_set_state(rig.element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  ASSERT_EQ(gst_element_set_state(rig.element, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_stream_start("restarted")));
  gst_harness_set_src_caps_str(rig.video, frames[0].caps("10/1").c_str());
  GstBuffer* out = rig.push_pull(frames[1].buffer(5 * GST_SECOND, kFrame));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u) << "an answer of the last run leaked into the new one";
  gst_buffer_unref(out);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_eos()));
  // Only the new run's partial clip (frame 1 at 5 s) is answered.
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(u32(messages[0], GST_QWENVL_FIELD_CLIP_FRAMES), 1u);
  EXPECT_EQ(u64(messages[0], GST_QWENVL_FIELD_WINDOW_START), 5 * GST_SECOND);
  EXPECT_EQ(rig.stat("asked"), 2u);
  free_all(messages);
}

}  // namespace
}  // namespace qwenvl::test
