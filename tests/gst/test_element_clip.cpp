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

}  // namespace
}  // namespace qwenvl::test
