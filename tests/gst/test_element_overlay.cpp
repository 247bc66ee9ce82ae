// overlay=true (gst-plugin/caption_overlay.cpp drawn by the qwenvl element), through GstHarness with
// the tiny-a fixture and the real engine: after an answer the outgoing frame changes only inside the
// caption box (white text on a darkened band, YUV chroma neutral there, row padding untouched), in
// every pixel format of the element's caps, at odd sizes with padded rows; before any answer, and
// with overlay=false, the frame passes untouched. Also the caption's ASCII fallback and wrapping.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "caption_overlay.h"
#include "element_rig.h"

namespace {

using namespace std::chrono_literals;
using qwenvl::gst::CaptionBox;
using qwenvl::test::Rig;
using qwenvl::test::TestFrame;

constexpr GstClockTime kFrame = GST_SECOND / 30;

// ---- the caption text ------------------------------------------------------------------------

TEST(CaptionText, NonAsciiBecomesLookAlikesOrQuestionMarks) {
  using qwenvl::gst::caption_ascii;
  EXPECT_EQ(caption_ascii("a plain caption."), "a plain caption.");
  EXPECT_EQ(caption_ascii("caf\u00e9 na\u00efve \u00c5ngstr\u00f6m"), "cafe naive Angstrom");
  EXPECT_EQ(caption_ascii("\u201cquoted\u201d \u2018x\u2019 \u2014 a\u2013b \u2026"), "\"quoted\" 'x' - a-b ...");
  EXPECT_EQ(caption_ascii("\ufb01ne\u00a0day"), "fine day");  // compatibility forms: ligature, no-break space
  EXPECT_EQ(caption_ascii("\u732b cat \U0001F600"), "? cat ?");  // no ASCII form: one '?' per character
  EXPECT_EQ(caption_ascii(std::string("bad \xff\xfe bytes")), "bad ?? bytes");
  EXPECT_EQ(caption_ascii("tab\there\r\nnext\x01"), "tab here \nnext");
}

TEST(CaptionText, WrapsToTheWidthCutsLongWordsAndTruncates) {
  using qwenvl::gst::caption_lines;
  const std::string text = "a small grey cat sits on a red chair near the window";
  const auto wide = caption_lines(text, 2000, 480);
  ASSERT_EQ(wide.size(), 1u);
  EXPECT_EQ(wide[0], text);
  const auto narrow = caption_lines(text, 160, 480);
  ASSERT_GT(narrow.size(), 2u);
  std::string joined;
  for (const auto& line : narrow) {
    EXPECT_FALSE(line.empty());
    EXPECT_NE(line.front(), ' ');
    joined += (joined.empty() ? "" : " ") + line;
  }
  EXPECT_EQ(joined, text);  // words kept whole and in order
  // A word longer than a line is cut into pieces that join back.
  const std::string word(40, 'w');
  const auto cut = caption_lines(word, 160, 480);
  ASSERT_GT(cut.size(), 1u);
  std::string pieces;
  for (const auto& line : cut) pieces += line;
  EXPECT_EQ(pieces, word);
  // Hard line breaks are kept; too many lines for half the frame end with "...".
  EXPECT_EQ(caption_lines("one\ntwo", 2000, 480), (std::vector<std::string>{"one", "two"}));
  std::string many;
  for (int i = 0; i < 200; ++i) many += "word ";
  const auto truncated = caption_lines(many, 200, 120);
  ASSERT_FALSE(truncated.empty());
  EXPECT_LT(truncated.size(), 10u);
  EXPECT_EQ(truncated.back().substr(truncated.back().size() - 3), "...");
  EXPECT_TRUE(caption_lines("", 320, 240).empty());
  EXPECT_TRUE(qwenvl::gst::caption_box("", qwenvl::PixelFormat::kRGB, 320, 240).empty());
}

// ---- the frame, plane by plane ------------------------------------------------------------------

// Bytes of plane `p` that a caption in `box` may change: rows and pixel bytes under the box (chroma
// planes at half resolution); never the row padding.
struct PlaneRegion {
  int row_begin, row_end, byte_end;
};

PlaneRegion region(const TestFrame& f, guint p, const CaptionBox& box) {
  const GstVideoFormatInfo* finfo = f.info.finfo;
  gint comps[GST_VIDEO_MAX_COMPONENTS];
  gst_video_format_info_component(finfo, p, comps);
  const int sub_h = GST_VIDEO_FORMAT_INFO_H_SUB(finfo, comps[0]);
  const int pstride = GST_VIDEO_FORMAT_INFO_PSTRIDE(finfo, comps[0]);
  const int cols = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH(finfo, comps[0], f.width());
  return PlaneRegion{box.y >> sub_h, GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT(finfo, comps[0], f.height()), cols * pstride};
}

// Fails naming the first byte that changed outside the box (padding included).
::testing::AssertionResult changed_only_inside(const TestFrame& f, const std::vector<uint8_t>& out, const CaptionBox& box) {
  if (out.size() != f.bytes.size()) return ::testing::AssertionFailure() << "size " << out.size();
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&f.info); ++p) {
    const PlaneRegion r = region(f, p, box);
    const int stride = f.info.stride[p];
    const size_t end = p + 1 < GST_VIDEO_INFO_N_PLANES(&f.info) ? f.info.offset[p + 1] : f.bytes.size();
    for (size_t i = f.info.offset[p]; i < end; ++i) {
      const int row = static_cast<int>((i - f.info.offset[p]) / stride), col = static_cast<int>((i - f.info.offset[p]) % stride);
      const bool inside = row >= r.row_begin && row < r.row_end && col < r.byte_end;
      if (!inside && out[i] != f.bytes[i])
        return ::testing::AssertionFailure() << "plane " << p << " row " << row << " byte " << col << " changed outside the box (rows "
                                             << r.row_begin << ".." << r.row_end << ", bytes <" << r.byte_end << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// What the band looks like: text pixels (bright in every colour channel), dark background pixels,
// and the format's extra bytes (alpha / chroma) as they must be.
struct BandCensus {
  int pixels = 0, bright = 0, dark = 0, bad_extra = 0;
};

BandCensus census(const TestFrame& f, const std::vector<uint8_t>& out, const CaptionBox& box) {
  BandCensus c;
  const GstVideoFormat format = GST_VIDEO_INFO_FORMAT(&f.info);
  const bool yuv = format == GST_VIDEO_FORMAT_NV12 || format == GST_VIDEO_FORMAT_I420;
  const int n = yuv ? 1 : GST_VIDEO_INFO_COMP_PSTRIDE(&f.info, 0);
  const int stride = f.info.stride[0];
  for (int y = box.y; y < box.y + box.height; ++y)
    for (int x = box.x; x < box.x + box.width; ++x) {
      const uint8_t* px = out.data() + f.info.offset[0] + y * stride + x * n;
      const int colours = yuv ? 1 : 3;
      bool bright = true, dark = true;
      for (int k = 0; k < colours; ++k) {
        bright &= px[k] >= 200;
        dark &= px[k] <= 96;  // a third of 255, plus anti-aliasing's fringe
      }
      ++c.pixels;
      c.bright += bright;
      c.dark += dark;
      if (n == 4 && px[3] != 255) ++c.bad_extra;  // the band is opaque
    }
  if (yuv) {
    for (guint p = 1; p < GST_VIDEO_INFO_N_PLANES(&f.info); ++p) {
      const PlaneRegion r = region(f, p, box);
      for (int y = r.row_begin; y < r.row_end; ++y)
        for (int b = 0; b < r.byte_end; ++b)
          if (out[f.info.offset[p] + y * f.info.stride[p] + b] != 128) ++c.bad_extra;  // neutral chroma
    }
  }
  return c;
}

struct OverlayCase {
  GstVideoFormat format;
  int width, height, padding;
};

class Overlay : public ::testing::TestWithParam<OverlayCase> {};

TEST_P(Overlay, AnswerIsDrawnInsideTheCaptionBoxOnly) {
  const OverlayCase c = GetParam();
  const TestFrame frame = qwenvl::test::make_frame(c.format, c.width, c.height, c.padding);
  Rig rig("overlay=true mode=sync temperature=0 max-new-tokens=8");
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());

  // Sync mode: the first frame is asked, answered, and its answer drawn onto it. The model saw the
  // frame before the caption, and the buffer the test still holds is not written to.
  GstBuffer* in = frame.buffer(0, kFrame);
  gst_buffer_ref(in);
  ASSERT_EQ(gst_harness_push(rig.video, in), GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(rig.video);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(qwenvl::test::buffer_bytes(in), frame.bytes) << "the upstream buffer was drawn on";
  gst_buffer_unref(in);
  const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
  ASSERT_NE(meta, nullptr);
  const std::string text = qwenvl::test::str(meta, GST_QWENVL_FIELD_TEXT);
  const auto format = *qwenvl::pixel_format_from_name(gst_video_format_to_string(c.format));
  const CaptionBox box = qwenvl::gst::caption_box(text, format, c.width, c.height);
  ASSERT_FALSE(box.empty()) << "the answer '" << text << "' has nothing to draw";
  EXPECT_EQ(box.x, 0);
  EXPECT_EQ(box.width, c.width);
  EXPECT_EQ(box.y + box.height, c.height);
  EXPECT_LE(box.height, c.height / 2 + 2);

  const std::vector<uint8_t> drawn = qwenvl::test::buffer_bytes(out);
  EXPECT_NE(drawn, frame.bytes);
  EXPECT_TRUE(changed_only_inside(frame, drawn, box));
  const BandCensus band = census(frame, drawn, box);
  EXPECT_GE(band.bright, 10) << "no white text in the band of '" << text << "'";
  EXPECT_LT(band.bright, band.pixels / 2);
  EXPECT_GE(band.dark, band.pixels / 2) << "the band is not dark";
  EXPECT_EQ(band.bad_extra, 0) << "alpha not opaque or chroma not neutral in the band";
  gst_buffer_unref(out);

  // Later frames carry the same caption until the next answer (here: none is due).
  rig.set("interval=10000000000");
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(kFrame, kFrame)), GST_FLOW_OK);
  out = gst_harness_pull(rig.video);
  EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u);
  EXPECT_EQ(qwenvl::test::buffer_bytes(out), drawn);
  gst_buffer_unref(out);

  // overlay=false (live): the video passes untouched again.
  rig.set("overlay=false");
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(2 * kFrame, kFrame)), GST_FLOW_OK);
  out = gst_harness_pull(rig.video);
  EXPECT_EQ(qwenvl::test::buffer_bytes(out), frame.bytes);
  gst_buffer_unref(out);
}

INSTANTIATE_TEST_SUITE_P(Formats, Overlay,
                         ::testing::Values(OverlayCase{GST_VIDEO_FORMAT_RGB, 161, 97, 5}, OverlayCase{GST_VIDEO_FORMAT_RGBA, 163, 99, 4},
                                           OverlayCase{GST_VIDEO_FORMAT_RGBx, 161, 97, 0}, OverlayCase{GST_VIDEO_FORMAT_BGR, 157, 95, 3},
                                           OverlayCase{GST_VIDEO_FORMAT_BGRA, 161, 97, 8}, OverlayCase{GST_VIDEO_FORMAT_BGRx, 159, 93, 12},
                                           OverlayCase{GST_VIDEO_FORMAT_NV12, 161, 97, 3}, OverlayCase{GST_VIDEO_FORMAT_I420, 163, 99, 7}),
                         [](const auto& info) {
                           return std::string(gst_video_format_to_string(info.param.format)) + "_" +
                                  std::to_string(info.param.width) + "x" + std::to_string(info.param.height) + "_pad" +
                                  std::to_string(info.param.padding);
                         });

TEST(OverlayElement, PropertyIsDocumentedOffByDefaultAndMutableWhilePlaying) {
  qwenvl::test::init_gst();
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  ASSERT_NE(e, nullptr);
  GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), "overlay");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(G_PARAM_SPEC_VALUE_TYPE(spec), G_TYPE_BOOLEAN);
  EXPECT_FALSE(G_PARAM_SPEC_BOOLEAN(spec)->default_value);
  EXPECT_TRUE(spec->flags & GST_PARAM_MUTABLE_PLAYING);
  EXPECT_NE(std::string(g_param_spec_get_blurb(spec)).find("OpenCV"), std::string::npos);
  gst_object_unref(e);
}

TEST(OverlayElement, FramesPassUntouchedUntilTheFirstAnswer) {
  const TestFrame frame = qwenvl::test::make_frame(GST_VIDEO_FORMAT_RGB, 65, 49, 3);
  // A request long enough to hold the engine busy: no answer while these frames go by.
  Rig rig("overlay=true mode=async temperature=0 max-new-tokens=4000 prompt=Describe");
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(i * kFrame, kFrame)), GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(rig.video);
    EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u);
    EXPECT_EQ(qwenvl::test::buffer_bytes(out), frame.bytes) << "frame " << i << " drawn on before any answer";
    gst_buffer_unref(out);
  }
  ASSERT_EQ(rig.stat("answered"), 0u);
  // Flush the long request away, ask a short one, and wait for its answer: the next frame is drawn.
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_stop(TRUE)));
  for (int i = 0; i < 300 && rig.stat("cancelled") == 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(rig.stat("queue-depth"), 0u);
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_segment(&segment)));
  rig.set("max-new-tokens=6 interval=10000000000");
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(0, kFrame)), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(rig.video));
  for (int i = 0; i < 600 && rig.stat("answered") == 0; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(rig.stat("answered"), 1u);
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(kFrame, kFrame)), GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(rig.video);
  const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
  ASSERT_NE(meta, nullptr);
  const CaptionBox box = qwenvl::gst::caption_box(qwenvl::test::str(meta, GST_QWENVL_FIELD_TEXT),
                                                  qwenvl::PixelFormat::kRGB, frame.width(), frame.height());
  const std::vector<uint8_t> drawn = qwenvl::test::buffer_bytes(out);
  EXPECT_NE(drawn, frame.bytes);
  EXPECT_TRUE(changed_only_inside(frame, drawn, box));
  gst_buffer_unref(out);
}

}  // namespace
