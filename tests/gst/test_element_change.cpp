// change-threshold: on a video whose picture changes at known frames, the element asks exactly at
// those frames and counts the others as skipped-unchanged, with or without interval, for clips,
// and never for the questions of the `ask` signal.
#include <algorithm>
#include <set>

#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;

// `frame` with every pixel byte `delta` levels brighter (clamped): a luma change of at most `delta`,
// as sensor noise or a flicker makes.
TestFrame brightened(const TestFrame& frame, int delta) {
  TestFrame out = frame;
  const GstVideoFormatInfo* finfo = out.info.finfo;
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&out.info); ++p) {
    gint comps[GST_VIDEO_MAX_COMPONENTS];
    gst_video_format_info_component(finfo, p, comps);
    const int rows = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT(finfo, comps[0], out.height());
    const int cols = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH(finfo, comps[0], out.width()) * GST_VIDEO_FORMAT_INFO_PSTRIDE(finfo, comps[0]);
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x) {
        uint8_t& b = out.bytes[out.info.offset[p] + y * out.info.stride[p] + x];
        b = static_cast<uint8_t>(std::min(255, b + delta));
      }
  }
  return out;
}

// Pushes frames[i] at i * kFrame and returns the pts of every answer (sync mode: each rides on the
// buffer asked about, a clip's on its last frame), by the meta's pts field.
std::vector<GstClockTime> answered_pts(Rig& rig, const std::vector<const TestFrame*>& frames) {
  std::vector<GstClockTime> out;
  for (size_t i = 0; i < frames.size(); ++i) {
    GstBuffer* buffer = rig.push_pull(frames[i]->buffer(i * kFrame, kFrame));
    EXPECT_NE(buffer, nullptr) << "frame " << i;
    if (buffer == nullptr) break;
    std::vector<GstStructure*> metas = metas_of(buffer);
    for (const GstStructure* meta : metas) out.push_back(u64(meta, GST_QWENVL_FIELD_PTS));
    free_all(metas);
    gst_buffer_unref(buffer);
  }
  return out;
}

std::vector<GstClockTime> frames_at(std::initializer_list<int> indices) {
  std::vector<GstClockTime> out;
  for (int i : indices) out.push_back(i * kFrame);
  return out;
}

void expect_counts_add_up(Rig& rig) {
  EXPECT_EQ(rig.stat("asked"), rig.stat("answered") + rig.stat("dropped") + rig.stat("failed"));
}

// Plays `video` (caps of its first frame, 10 frames/s) into an element in sync mode with `properties`
// and checks that the answers are about exactly the frames `asked` (by index) and that `skipped`
// due frames were skipped as unchanged.
void expect_asked_at(const std::string& properties, const std::vector<const TestFrame*>& video,
                     std::initializer_list<int> asked, guint64 skipped) {
  Rig rig("mode=sync temperature=0 max-new-tokens=1 " + properties);
  gst_harness_set_src_caps_str(rig.video, video.front()->caps("10/1").c_str());
  EXPECT_EQ(answered_pts(rig, video), frames_at(asked)) << properties;
  EXPECT_EQ(rig.stat("asked"), asked.size()) << properties;
  EXPECT_EQ(rig.stat("skipped-unchanged"), skipped) << properties;
  EXPECT_EQ(rig.stat("dropped"), 0u) << properties;
  expect_counts_add_up(rig);
}

TEST(ElementChange, EveryFrameAskedOnlyWhereThePictureChanges) {
  const TestFrame a = make_frame(GST_VIDEO_FORMAT_RGB, 32, 24, 2, 0);
  const TestFrame b = make_frame(GST_VIDEO_FORMAT_RGB, 32, 24, 2, 1);
  const TestFrame b_noisy = brightened(b, 2);  // differs by 2 at most: under the threshold
  //                  frame:  0   1   2   3   4   5   6   7   8         9         10  11  12
  expect_asked_at("interval=0 change-threshold=5",
                  {&a, &a, &a, &a, &b, &b, &b, &b, &b_noisy, &b_noisy, &a, &a, &a}, {0, 4, 10}, 10);
}

TEST(ElementChange, WithIntervalTheFirstChangedFrameAfterItIsAsked) {
  const TestFrame a = make_frame(GST_VIDEO_FORMAT_NV12, 26, 18, 4, 0);
  const TestFrame b = make_frame(GST_VIDEO_FORMAT_NV12, 26, 18, 4, 2);
  // 300 ms interval at 10 frames/s: frames 1 and 2 are not due; 3 to 6 are due but unchanged, so
  // each is compared in turn until frame 7 changes; then 8, 9 not due, 10, 11 unchanged.
  expect_asked_at("interval=300000000 change-threshold=8", {&a, &a, &a, &a, &a, &a, &a, &b, &b, &b, &b, &b}, {0, 7}, 6);
}

TEST(ElementChange, ClipsAreComparedByTheFrameThatStartsThem) {
  const TestFrame a = make_frame(GST_VIDEO_FORMAT_RGB, 24, 20, 0, 0);
  const TestFrame b = make_frame(GST_VIDEO_FORMAT_RGB, 24, 20, 0, 1);
  // Two consecutive frames a clip: frames 0-1 asked; 2-5 due and like frame 0, skipped; 6-7 asked
  // (a clip's answer has its first frame's pts).
  expect_asked_at("interval=0 clip-frames=2 clip-duration=0 change-threshold=5", {&a, &a, &a, &a, &a, &a, &b, &b}, {0, 6},
                  4);
}

TEST(ElementChange, ZeroIsOffAndAsksEveryDueFrame) {
  const TestFrame a = make_frame(GST_VIDEO_FORMAT_RGB, 16, 16, 0, 0);
  Rig rig("");
  double threshold = -1;
  g_object_get(rig.element, "change-threshold", &threshold, nullptr);
  EXPECT_EQ(threshold, 0.0) << "the default";
  expect_asked_at("interval=0", {&a, &a, &a}, {0, 1, 2}, 0);
}

TEST(ElementChange, RoiFramesWithoutBoxesAreNeitherComparedNorKept) {
  const TestFrame a = make_frame(GST_VIDEO_FORMAT_RGB, 32, 24, 0, 0);
  const TestFrame b = make_frame(GST_VIDEO_FORMAT_RGB, 32, 24, 0, 1);
  Rig rig("mode=sync temperature=0 max-new-tokens=1 interval=0 roi=true change-threshold=5");
  gst_harness_set_src_caps_str(rig.video, a.caps("10/1").c_str());
  // frame 0: a, box; 1: b, no box (nothing to ask: not the reference); 2: b, box (differs from
  // frame 0: asked); 3: b, box (like frame 2: skipped).
  const struct {
    const TestFrame* picture;
    bool box;
  } video[] = {{&a, true}, {&b, false}, {&b, true}, {&b, true}};
  std::vector<GstClockTime> pts;
  for (size_t i = 0; i < 4; ++i) {
    GstBuffer* in = video[i].picture->buffer(i * kFrame, kFrame);
    if (video[i].box) gst_buffer_add_video_region_of_interest_meta(in, "thing", 4, 4, 16, 12);
    GstBuffer* out = rig.push_pull(in);
    ASSERT_NE(out, nullptr);
    std::vector<GstStructure*> metas = metas_of(out);
    for (const GstStructure* meta : metas) pts.push_back(u64(meta, GST_QWENVL_FIELD_PTS));
    free_all(metas);
    gst_buffer_unref(out);
  }
  EXPECT_EQ(pts, frames_at({0, 2}));
  EXPECT_EQ(rig.stat("skipped-unchanged"), 1u) << "frame 3 only: frame 1 had nothing to ask";
}

TEST(ElementChange, AskSignalQuestionsAreNeverSkipped) {
  const TestFrame a = make_frame(GST_VIDEO_FORMAT_RGB, 16, 16, 0, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=1 interval=0 change-threshold=5");
  gst_harness_set_src_caps_str(rig.video, a.caps("10/1").c_str());
  EXPECT_EQ(answered_pts(rig, {&a}), frames_at({0}));
  guint64 id = 0;
  g_signal_emit_by_name(rig.element, "ask", "Anything new?", &id);
  GstBuffer* out = rig.push_pull(a.buffer(kFrame, kFrame));
  ASSERT_NE(out, nullptr);
  std::vector<GstStructure*> metas = metas_of(out);
  ASSERT_EQ(metas.size(), 1u) << "the unchanged frame: the ask's answer only";
  EXPECT_EQ(u64(metas[0], GST_QWENVL_FIELD_REQUEST_ID), id);
  free_all(metas);
  gst_buffer_unref(out);
  EXPECT_EQ(rig.stat("skipped-unchanged"), 1u);  // the interval's question about that frame
  EXPECT_EQ(rig.stat("asked"), 2u);
  expect_counts_add_up(rig);
}

TEST(ElementChange, AFlushForgetsTheFrameLastAsked) {
  const TestFrame a = make_frame(GST_VIDEO_FORMAT_RGB, 16, 16, 0, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=1 interval=0 change-threshold=5");
  gst_harness_set_src_caps_str(rig.video, a.caps("10/1").c_str());
  EXPECT_EQ(answered_pts(rig, {&a, &a}), frames_at({0}));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_segment(&segment)));
  EXPECT_EQ(answered_pts(rig, {&a}), frames_at({0})) << "the same picture, asked again after the flush";
}

}  // namespace
}  // namespace qwenvl::test
