// Bad input to the element (issue 15, item 4): every caps format at odd sizes, zero-length and
// truncated buffers, buffers without timestamps, absurd property values, a frame far over the
// model's pixel limit. Never a crash, a hang or a silent drop: each asked frame ends answered or
// failed with a qwenvl-failed message that gives the reason, each frame not asked is a counted
// drop with a warning naming the fault.
#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 30;

// The WARNING messages on the rig's bus, as "message | debug", and the element messages named
// `name` (the caller frees them): one pass, since popping by type discards the rest.
std::vector<std::string> warnings(Rig& rig, const char* name, std::vector<GstStructure*>* element_messages) {
  std::vector<std::string> out;
  while (GstMessage* m = gst_bus_pop(rig.bus)) {
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_WARNING) {
      GError* error = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_warning(m, &error, &debug);
      out.push_back(std::string(error->message) + " | " + (debug ? debug : ""));
      g_error_free(error);
      g_free(debug);
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && gst_structure_has_name(gst_message_get_structure(m), name)) {
      element_messages->push_back(gst_structure_copy(gst_message_get_structure(m)));
    }
    gst_message_unref(m);
  }
  return out;
}

// Pushes one frame in sync mode: it is asked, and ends answered or failed with a reason.
void expect_answered_or_failed_with_reason(Rig& rig, const TestFrame& frame, const std::string& what) {
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK) << what;
  gst_buffer_unref(gst_harness_pull(rig.video));
  EXPECT_EQ(rig.stat("asked"), 1u) << what;
  EXPECT_EQ(rig.stat("answered") + rig.stat("failed"), 1u) << what;
  std::vector<GstStructure*> failed = rig.messages("qwenvl-failed");
  EXPECT_EQ(failed.size(), rig.stat("failed")) << what;
  for (GstStructure* f : failed) EXPECT_NE(str(f, "error"), "") << what << ": a failure without its reason";
  if (!failed.empty()) std::printf("%s: failed: %s\n", what.c_str(), str(failed[0], "error").c_str());
  free_all(failed);
}

constexpr const char* kQuick = "mode=sync temperature=0 max-new-tokens=2";

TEST(ElementInput, EveryFormatAtOneByOneIsAnsweredOrFailsWithTheReason) {
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGR,
                                GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_I420}) {
    Rig rig(kQuick);
    expect_answered_or_failed_with_reason(rig, make_frame(format, 1, 1, 0),
                                          std::string("1x1 ") + gst_video_format_to_string(format));
  }
}

TEST(ElementInput, OddSizedYuvFramesAreAnsweredOrFailWithTheReason) {
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_I420}) {
    Rig rig(kQuick);
    expect_answered_or_failed_with_reason(rig, make_frame(format, 641, 479, 3),
                                          std::string("641x479 ") + gst_video_format_to_string(format));
  }
}

// 8192x8192 is far over the tiny model's max_pixels: resized down before the vision tower.
TEST(ElementInput, HugeFramesAreAnsweredOrFailWithTheReason) {
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_RGBx}) {
    Rig rig(kQuick);
    expect_answered_or_failed_with_reason(rig, make_frame(format, 8192, 8192, 0),
                                          std::string("8192x8192 ") + gst_video_format_to_string(format));
  }
}

// A frame over max-pixels as the user set it, and every numeric property at its extreme.
TEST(ElementInput, ExtremePropertyValuesNeverCrashOrHang) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  for (const char* extreme :
       {"max-pixels=1", "min-pixels=9223372036854775807", "max-pixels=9223372036854775807 min-pixels=9223372036854775807",
        "stop-strings=<\"\">", "seed=9223372036854775807 top-k=2147483647 repetition-penalty=100",
        "temperature=100 top-p=0 min-p=1", "history-size=1024 max-pending=1024 caption-duration=18446744073709551615"}) {
    Rig rig(std::string(kQuick) + " " + extreme);
    expect_answered_or_failed_with_reason(rig, frame, extreme);
  }
  // What these extremes do is in gst-inspect's text.
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  const auto blurb = [&](const char* name) {
    return std::string(g_param_spec_get_blurb(g_object_class_find_property(G_OBJECT_GET_CLASS(e), name)));
  };
  EXPECT_NE(blurb("min-pixels").find("fails that frame's request with the reason"), std::string::npos);
  EXPECT_NE(blurb("max-pixels").find("still becomes one cell"), std::string::npos);
  gst_object_unref(e);
}

TEST(ElementInput, ZeroLengthAndTruncatedBuffersAreCountedDropsWithAWarning) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig(kQuick);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  GstBuffer* empty = gst_buffer_new();
  GST_BUFFER_PTS(empty) = 0;
  GstBuffer* truncated = gst_buffer_new_memdup(frame.bytes.data(), frame.bytes.size() / 2);
  GST_BUFFER_PTS(truncated) = kFrame;
  for (GstBuffer* bad : {empty, truncated}) {
    ASSERT_EQ(gst_harness_push(rig.video, bad), GST_FLOW_OK);  // the video goes on
    gst_buffer_unref(gst_harness_pull(rig.video));
  }
  EXPECT_EQ(rig.stat("dropped"), 2u);
  EXPECT_EQ(rig.stat("asked"), 0u);
  std::vector<GstStructure*> drops;
  const std::vector<std::string> warned = warnings(rig, "qwenvl-dropped", &drops);
  ASSERT_EQ(warned.size(), 2u);
  EXPECT_NE(warned[0].find("buffer of 0 bytes as a 32x32 RGB frame"), std::string::npos) << warned[0];
  EXPECT_NE(warned[1].find("truncated"), std::string::npos) << warned[1];
  ASSERT_EQ(drops.size(), 2u);
  for (GstStructure* d : drops) EXPECT_EQ(str(d, "reason"), "unreadable-buffer");
  free_all(drops);
  // A whole buffer after them is asked and answered.
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(2 * kFrame, kFrame)), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(rig.video));
  EXPECT_EQ(rig.stat("answered"), 1u);
}

// Without timestamps interval cannot be measured: every such buffer is due (documented).
TEST(ElementInput, BuffersWithoutTimestampsAreAskedAndAnswered) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_I420, 20, 20, 0);
  Rig rig(std::string(kQuick) + " interval=1000000000");
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(rig.video));
  }
  EXPECT_EQ(rig.stat("asked"), 3u);
  EXPECT_EQ(rig.stat("answered"), 3u);
}

// interval=-1 is GST_CLOCK_TIME_NONE: no interval, only the first frame, as gst-inspect says.
TEST(ElementInput, IntervalMinusOneAsksTheFirstFrameOnlyAsDocumented) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig(std::string(kQuick) + " interval=-1");
  guint64 interval = 0;
  g_object_get(rig.element, "interval", &interval, nullptr);
  EXPECT_EQ(interval, GST_CLOCK_TIME_NONE);
  const gchar* blurb = g_param_spec_get_blurb(g_object_class_find_property(G_OBJECT_GET_CLASS(rig.element), "interval"));
  EXPECT_NE(std::string(blurb).find("what -1 becomes"), std::string::npos) << blurb;
  EXPECT_NE(std::string(blurb).find("only the first frame"), std::string::npos) << blurb;
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(i * GST_SECOND * 1000, kFrame)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(rig.video));
  }
  EXPECT_EQ(rig.stat("asked"), 1u);
  EXPECT_EQ(rig.stat("answered"), 1u);
}

}  // namespace
}  // namespace qwenvl::test
