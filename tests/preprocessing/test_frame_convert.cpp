// The engine's frame conversion (kernels::frames_to_rgb on the CPU, after copy_frame, as
// preprocess_image and preprocess_video run it; the CUDA kernels give the same bytes) against
// GStreamer itself: random frames with padded strides go through
// `appsrc ! videoconvert ! video/x-raw,format=RGB ! appsink` and through the engine; every channel
// of every pixel must agree within one level. Also the copy step, the format names,
// FrameView::packed and the validation errors.
//
// What is matched: GStreamer 1.22's videoconvert with default properties (chroma-resampler linear,
// chroma-mode full, matrix-mode full, gamma/primaries none, dither quantization 1 = no dither,
// n-threads 1). What videoconvert does, from gst-plugins-base 1.22
// gst-libs/gst/video/video-converter.c, video-chroma.c and video-orc.orc:
//
// - I420 -> RGB takes the fastpath convert_I420_pack_ARGB: each chroma sample is repeated for its
//   2x2 pixels (nearest, no interpolation).
// - NV12 -> RGB has no fastpath: the generic chain unpacks to AYUV (chroma repeated), then
//   upsamples chroma in place with video-chroma.c: horizontally a 3/4-1/4 filter, or for a chroma
//   site with H_COSITED (set only by the default colorimetry above 576 lines; caps with colorimetry
//   but no chroma-site leave it UNKNOWN) the average of the two neighbours; then vertically a
//   3/4-1/4 filter on line pairs (2k-1, 2k) (no chroma site we meet sets V_COSITED).
// - Both then apply the same orc arithmetic (video_orc_convert_I420_ARGB / _AYUV_ARGB): bytes minus
//   128 as signed, widened by byte splatting ((s << 8) | (s & 0xff)), multiplied by 8.8 fixed-point
//   coefficients keeping the high 16 bits, summed, saturated to a signed byte, plus 128. The
//   coefficients are rint(256 * 255 * K / scale) with the range's scale (219 / 224 limited, 255
//   full) taken as a float reciprocal. Range offsets are not applied in these orc paths, so
//   limited-range Y is centred on 128, not 16 (Y=235 gives 253, not 255): the engine reproduces
//   that (kernels/frame_preparation_math.h), since the point is identical pixels.
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "preprocessing/frames.h"
#include "preprocessing/owned_frame.h"
#include "qwenvl/engine.h"

namespace qwenvl::model {
namespace {

// ---- a frame in memory with padded strides --------------------------------------------------

struct TestFrame {
  std::vector<std::vector<uint8_t>> planes;  // each plane: rows * stride bytes, padding random too
  FrameView view;
};

TestFrame random_frame(PixelFormat format, int width, int height, std::mt19937& rng) {
  TestFrame frame;
  frame.view.format = format;
  frame.view.width = width;
  frame.view.height = height;
  const PlaneGeometry geometry = plane_geometry(format, width, height);
  std::uniform_int_distribution<int> byte(0, 255), pad(1, 37);
  frame.planes.resize(geometry.count);
  for (int i = 0; i < geometry.count; ++i) {
    const int stride = static_cast<int>(geometry.row_bytes[i]) + pad(rng);  // never tight: strides are honoured
    frame.planes[i].resize(static_cast<size_t>(stride) * geometry.rows[i]);
    for (uint8_t& b : frame.planes[i]) b = static_cast<uint8_t>(byte(rng));
    frame.view.planes[i] = frame.planes[i].data();
    frame.view.strides[i] = stride;
  }
  return frame;
}

// ---- the reference: GStreamer's videoconvert ------------------------------------------------

struct GstDeleter {
  void operator()(GstElement* e) const {
    gst_element_set_state(e, GST_STATE_NULL);
    gst_object_unref(e);
  }
};

// RGB rows (width * 3 bytes each, packed) as videoconvert makes them. `colorimetry` empty: caps
// without a colorimetry field, i.e. GStreamer's default for the format and size.
std::vector<uint8_t> videoconvert_rgb(const FrameView& frame, const std::string& colorimetry) {
  std::string caps = std::string("video/x-raw,format=") + pixel_format_name(frame.format) +
                     ",width=" + std::to_string(frame.width) + ",height=" + std::to_string(frame.height) +
                     ",framerate=0/1";
  if (!colorimetry.empty()) caps += ",colorimetry=" + colorimetry;
  const std::string description =
      "appsrc name=src caps=\"" + caps + "\" ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink";
  GError* error = nullptr;
  std::unique_ptr<GstElement, GstDeleter> pipeline(gst_parse_launch(description.c_str(), &error));
  if (error != nullptr) {
    const std::string message = error->message;
    g_error_free(error);
    throw std::runtime_error("gst_parse_launch: " + message);
  }
  GstElement* src = gst_bin_get_by_name(GST_BIN(pipeline.get()), "src");
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline.get()), "sink");
  gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);

  // The planes one after another in one buffer, with the frame's strides told through GstVideoMeta.
  const PlaneGeometry geometry = plane_geometry(frame.format, frame.width, frame.height);
  gsize offsets[GST_VIDEO_MAX_PLANES] = {0};
  gint strides[GST_VIDEO_MAX_PLANES] = {0};
  gsize total = 0;
  for (int i = 0; i < geometry.count; ++i) {
    offsets[i] = total;
    strides[i] = frame.strides[i];
    total += static_cast<gsize>(frame.strides[i]) * geometry.rows[i];
  }
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, total, nullptr);
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_WRITE);
  for (int i = 0; i < geometry.count; ++i)
    std::copy_n(frame.planes[i], static_cast<size_t>(frame.strides[i]) * geometry.rows[i], map.data + offsets[i]);
  gst_buffer_unmap(buffer, &map);
  gst_buffer_add_video_meta_full(buffer, GST_VIDEO_FRAME_FLAG_NONE,
                                 gst_video_format_from_string(pixel_format_name(frame.format)), frame.width,
                                 frame.height, geometry.count, offsets, strides);
  gst_app_src_push_buffer(GST_APP_SRC(src), buffer);
  gst_app_src_end_of_stream(GST_APP_SRC(src));

  GstSample* sample = gst_app_sink_pull_sample(GST_APP_SINK(sink));
  gst_object_unref(src);
  gst_object_unref(sink);
  if (sample == nullptr) throw std::runtime_error("videoconvert gave no frame for " + caps);
  GstVideoInfo info;
  gst_video_info_from_caps(&info, gst_sample_get_caps(sample));
  GstVideoFrame out;
  gst_video_frame_map(&out, &info, gst_sample_get_buffer(sample), GST_MAP_READ);
  std::vector<uint8_t> rgb(static_cast<size_t>(frame.width) * frame.height * 3);
  for (int row = 0; row < frame.height; ++row) {
    const auto* line = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&out, 0)) +
                       static_cast<size_t>(row) * GST_VIDEO_FRAME_PLANE_STRIDE(&out, 0);
    std::copy_n(line, frame.width * 3, rgb.begin() + static_cast<size_t>(row) * frame.width * 3);
  }
  gst_video_frame_unmap(&out);
  gst_sample_unref(sample);
  return rgb;
}

// ---- the comparison -------------------------------------------------------------------------

struct Colorimetry {
  const char* caps;  // "" = caps without colorimetry
  YuvMatrix matrix;
  bool full_range;
};

// Named caps strings and "range:matrix:transfer:primaries" (GStreamer's enum values: range 1 = 0-255;
// matrix 3 BT.709, 4 BT.601, 6 BT.2020).
const Colorimetry kColorimetries[] = {
    {"", YuvMatrix::kAuto, false},
    {"bt601", YuvMatrix::kBT601, false},
    {"bt709", YuvMatrix::kBT709, false},
    {"bt2020", YuvMatrix::kBT2020, false},
    {"1:4:0:0", YuvMatrix::kBT601, true},
    {"1:3:0:0", YuvMatrix::kBT709, true},
    {"1:6:0:0", YuvMatrix::kBT2020, true},
};

struct Tally {
  std::map<int, int64_t> by_difference;  // |ours - GStreamer's| per channel -> count
  int64_t total() const {
    int64_t n = 0;
    for (const auto& [d, count] : by_difference) n += count;
    return n;
  }
};

std::map<std::string, Tally>& tallies() {
  static std::map<std::string, Tally> all;
  return all;
}

// Compares one frame; returns the largest difference.
int compare_with_gstreamer(const FrameView& frame, const std::string& colorimetry, const std::string& label) {
  const std::vector<uint8_t> expected = videoconvert_rgb(frame, colorimetry);
  const at::Tensor ours = test::frame_rgb(frame);
  EXPECT_EQ(ours.size(1), frame.width);
  EXPECT_EQ(ours.size(0), frame.height);
  EXPECT_EQ(static_cast<size_t>(ours.numel()), expected.size());
  if (static_cast<size_t>(ours.numel()) != expected.size()) return 256;
  const uint8_t* rgb = ours.data_ptr<uint8_t>();
  Tally& tally = tallies()[label];
  int worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const int d = std::abs(static_cast<int>(rgb[i]) - static_cast<int>(expected[i]));
    ++tally.by_difference[d];
    if (d > worst) worst = d, worst_at = i;
  }
  if (worst > 1) {
    const size_t pixel = worst_at / 3;
    ADD_FAILURE() << label << " " << frame.width << "x" << frame.height << " colorimetry '" << colorimetry
                  << "': difference " << worst << " at x=" << pixel % frame.width << " y=" << pixel / frame.width
                  << " channel " << worst_at % 3 << " (ours " << int(rgb[worst_at]) << ", videoconvert "
                  << int(expected[worst_at]) << ")";
  }
  return worst;
}

class FrameConvertEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { gst_init(nullptr, nullptr); }
  void TearDown() override {
    std::printf("\nDifferences per channel, ours vs videoconvert:\n");
    for (const auto& [label, tally] : tallies()) {
      std::printf("  %-22s %12lld values:", label.c_str(), static_cast<long long>(tally.total()));
      for (const auto& [d, count] : tally.by_difference)
        std::printf("  |d|=%d: %lld (%.4f%%)", d, static_cast<long long>(count), 100.0 * count / tally.total());
      std::printf("\n");
    }
  }
};
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new FrameConvertEnvironment);

struct Size {
  int width, height;
};

// Odd sizes hit the last odd column / row of 4:2:0 chroma; 720x576 / 720x577 straddle GStreamer's
// switch of default colorimetry (BT.709 and H-cosited chroma above 576 lines).
const Size kYuvSizes[] = {{1, 1}, {2, 2}, {3, 3}, {2, 5}, {33, 17}, {64, 48}, {641, 479},
                          {720, 576}, {720, 577}, {1280, 720}, {1920, 1080}};

class YuvAgainstGstreamer : public ::testing::TestWithParam<PixelFormat> {};

TEST_P(YuvAgainstGstreamer, RandomFramesAllColorimetriesWithinOneLevel) {
  const PixelFormat format = GetParam();
  std::mt19937 rng(20240601u + static_cast<unsigned>(format));
  for (const Size& size : kYuvSizes) {
    for (const Colorimetry& c : kColorimetries) {
      TestFrame frame = random_frame(format, size.width, size.height, rng);
      frame.view.yuv_matrix = c.matrix;
      frame.view.yuv_full_range = c.full_range;
      const std::string label = std::string(pixel_format_name(format)) + " " + (*c.caps ? c.caps : "default");
      EXPECT_LE(compare_with_gstreamer(frame.view, c.caps, label), 1);
    }
  }
}

// Smooth content besides noise: a gradient with a few hard edges, the kind of picture the model sees.
TEST_P(YuvAgainstGstreamer, GradientFramesWithinOneLevel) {
  const PixelFormat format = GetParam();
  for (const Size& size : {Size{641, 479}, Size{1920, 1080}}) {
    TestFrame frame;
    std::mt19937 rng(7);
    frame = random_frame(format, size.width, size.height, rng);
    const PlaneGeometry geometry = plane_geometry(format, size.width, size.height);
    for (int p = 0; p < geometry.count; ++p)
      for (int64_t row = 0; row < geometry.rows[p]; ++row)
        for (int64_t x = 0; x < geometry.row_bytes[p]; ++x)
          frame.planes[p][row * frame.view.strides[p] + x] =
              static_cast<uint8_t>((x * 3 + row * 2 + (x / 97 % 2) * 120 + p * 50) % 256);
    for (const Colorimetry& c : kColorimetries) {
      frame.view.yuv_matrix = c.matrix;
      frame.view.yuv_full_range = c.full_range;
      const std::string label = std::string(pixel_format_name(format)) + " gradient";
      EXPECT_LE(compare_with_gstreamer(frame.view, c.caps, label), 1);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, YuvAgainstGstreamer, ::testing::Values(PixelFormat::kNV12, PixelFormat::kI420),
                         [](const auto& info) { return std::string(pixel_format_name(info.param)); });

class RgbAgainstGstreamer : public ::testing::TestWithParam<PixelFormat> {};

TEST_P(RgbAgainstGstreamer, RandomFramesWithinOneLevel) {
  const PixelFormat format = GetParam();
  std::mt19937 rng(99u + static_cast<unsigned>(format));
  for (const Size& size : {Size{1, 1}, Size{33, 17}, Size{641, 479}, Size{1280, 720}}) {
    TestFrame frame = random_frame(format, size.width, size.height, rng);
    EXPECT_LE(compare_with_gstreamer(frame.view, "", pixel_format_name(format)), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, RgbAgainstGstreamer,
                         ::testing::Values(PixelFormat::kRGB, PixelFormat::kRGBA, PixelFormat::kRGBx, PixelFormat::kBGR,
                                           PixelFormat::kBGRA, PixelFormat::kBGRx),
                         [](const auto& info) { return std::string(pixel_format_name(info.param)); });

// ---- names, packed layout, the copy step ----------------------------------------------------

TEST(PixelFormat, NamesAreGstreamersAndRoundTrip) {
  const std::vector<PixelFormat>& formats = supported_pixel_formats();
  ASSERT_EQ(formats.size(), 8u);
  for (PixelFormat format : formats) {
    const char* name = pixel_format_name(format);
    EXPECT_EQ(pixel_format_from_name(name), format) << name;
    // The name is the one GStreamer knows for a format of the same layout.
    const GstVideoFormat gst_format = gst_video_format_from_string(name);
    ASSERT_NE(gst_format, GST_VIDEO_FORMAT_UNKNOWN) << name;
    const GstVideoFormatInfo* info = gst_video_format_get_info(gst_format);
    const PlaneGeometry geometry = plane_geometry(format, 33, 17);
    EXPECT_EQ(static_cast<int>(GST_VIDEO_FORMAT_INFO_N_PLANES(info)), geometry.count) << name;
  }
  EXPECT_FALSE(pixel_format_from_name("RGBX").has_value());  // caps names are case-sensitive
  EXPECT_FALSE(pixel_format_from_name("YUY2").has_value());
  EXPECT_FALSE(pixel_format_from_name("").has_value());
}

TEST(PixelFormat, PackedPlanesMatchGstreamersTightLayout) {
  // FrameView::packed's planes for odd sizes: chroma ceil(w/2) x ceil(h/2), planes back to back.
  for (PixelFormat format : supported_pixel_formats()) {
    for (const Size& size : {Size{1, 1}, Size{33, 17}, Size{640, 480}}) {
      std::vector<uint8_t> data(1);
      const FrameView view = FrameView::packed(format, size.width, size.height, data.data(), 1.5);
      EXPECT_EQ(view.timestamp_s, 1.5);
      const PlaneGeometry geometry = plane_geometry(format, size.width, size.height);
      ptrdiff_t offset = 0;
      for (int i = 0; i < geometry.count; ++i) {
        EXPECT_EQ(view.planes[i] - data.data(), offset) << pixel_format_name(format) << " plane " << i;
        EXPECT_EQ(view.strides[i], geometry.row_bytes[i]);
        offset += static_cast<ptrdiff_t>(geometry.row_bytes[i] * geometry.rows[i]);
      }
      // GStreamer's own component sizes for the format agree with ours.
      const GstVideoFormatInfo* info = gst_video_format_get_info(gst_video_format_from_string(pixel_format_name(format)));
      for (int c = 0; c < static_cast<int>(GST_VIDEO_FORMAT_INFO_N_COMPONENTS(info)); ++c) {
        const int plane = GST_VIDEO_FORMAT_INFO_PLANE(info, c);
        EXPECT_EQ(GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT(info, c, size.height), geometry.rows[plane]);
        EXPECT_EQ(GST_VIDEO_FORMAT_INFO_SCALE_WIDTH(info, c, size.width) * GST_VIDEO_FORMAT_INFO_PSTRIDE(info, c),
                  geometry.row_bytes[plane]);
      }
    }
  }
}

TEST(FrameConvert, PackedFrameConvertsLikeThePaddedOne) {
  std::mt19937 rng(3);
  for (PixelFormat format : supported_pixel_formats()) {
    const TestFrame padded = random_frame(format, 33, 17, rng);
    const PlaneGeometry geometry = plane_geometry(format, 33, 17);
    std::vector<uint8_t> tight;
    for (int i = 0; i < geometry.count; ++i)
      for (int64_t row = 0; row < geometry.rows[i]; ++row)
        tight.insert(tight.end(), padded.planes[i].begin() + row * padded.view.strides[i],
                     padded.planes[i].begin() + row * padded.view.strides[i] + geometry.row_bytes[i]);
    EXPECT_TRUE(at::equal(test::frame_rgb(FrameView::packed(format, 33, 17, tight.data())), test::frame_rgb(padded.view)))
        << pixel_format_name(format);
  }
}

TEST(FrameConvert, CopyOwnsThePixelsAndConvertsIdentically) {
  std::mt19937 rng(5);
  for (PixelFormat format : supported_pixel_formats()) {
    TestFrame frame = random_frame(format, 641, 479, rng);
    frame.view.timestamp_s = 2.25;
    frame.view.yuv_matrix = YuvMatrix::kBT2020;
    frame.view.yuv_full_range = true;
    const at::Tensor before = test::frame_rgb(frame.view);
    OwnedFrame owned = copy_frame(frame.view);
    for (auto& plane : frame.planes) std::fill(plane.begin(), plane.end(), uint8_t{0});  // the caller reuses its memory
    const OwnedFrame moved = std::move(owned);
    const FrameView view = moved.view();
    const at::Tensor after = test::frame_rgb(view);
    EXPECT_TRUE(at::equal(after, before)) << pixel_format_name(format);
    EXPECT_EQ(after.size(1), 641);
    EXPECT_EQ(after.size(0), 479);
    EXPECT_EQ(view.timestamp_s, 2.25);
    EXPECT_EQ(view.yuv_matrix, YuvMatrix::kBT2020);
    EXPECT_TRUE(view.yuv_full_range);
    // Rows are packed: no padding kept.
    const PlaneGeometry geometry = plane_geometry(format, 641, 479);
    size_t total = 0;
    for (int i = 0; i < geometry.count; ++i) total += static_cast<size_t>(geometry.row_bytes[i] * geometry.rows[i]);
    EXPECT_EQ(moved.bytes.size(), total);
  }
}

// ---- validation -----------------------------------------------------------------------------

// Every frame reaches the conversion through copy_frame, which validates it.
void expect_error(const FrameView& frame, const std::string& fragment) {
  try {
    copy_frame(frame);
    ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(FrameConvert, RejectsBadFramesSayingWhy) {
  std::vector<uint8_t> data(64 * 64 * 4);
  FrameView nv12 = FrameView::packed(PixelFormat::kNV12, 33, 17, data.data());
  FrameView bad = nv12;
  bad.planes[1] = nullptr;
  expect_error(bad, "plane 1 (UV) is null");
  bad = nv12;
  bad.strides[1] = 33;  // the UV row of 33 pixels is 34 bytes
  expect_error(bad, "plane 1 (UV) stride 33 is smaller than its row of 34 bytes");
  bad = nv12;
  bad.strides[0] = -64;
  expect_error(bad, "plane 0 (Y) stride -64");
  bad = nv12;
  bad.width = 0;
  expect_error(bad, "width and height must be positive");
  bad = nv12;
  bad.height = -2;
  expect_error(bad, "width and height must be positive");
  bad = nv12;
  bad.yuv_matrix = static_cast<YuvMatrix>(17);
  expect_error(bad, "unknown YUV matrix");

  FrameView i420 = FrameView::packed(PixelFormat::kI420, 33, 17, data.data());
  i420.planes[2] = nullptr;
  expect_error(i420, "plane 2 (V) is null");

  FrameView rgba = FrameView::packed(PixelFormat::kRGBA, 10, 10, data.data());
  rgba.strides[0] = 39;
  expect_error(rgba, "stride 39 is smaller than its row of 40 bytes");
  expect_error(FrameView::packed(PixelFormat::kBGR, 10, 10, nullptr), "plane 0 (packed) is null");
  FrameView unknown = rgba;
  unknown.format = static_cast<PixelFormat>(42);
  expect_error(unknown, "unknown pixel format 42");
  FrameView huge = FrameView::packed(PixelFormat::kRGB, 100000, 1, data.data());
  expect_error(huge, "larger than");
}

}  // namespace
}  // namespace qwenvl::model
