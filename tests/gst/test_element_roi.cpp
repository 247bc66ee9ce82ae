// roi mode: one request per GstVideoRegionOfInterestMeta box of an asked frame, the box cropped
// (clamped to the frame; NV12/I420 crops start on even coordinates), the answer carrying the box's id
// and label and equal to the engine API's answer about the same crop; roi-labels filters boxes.
// Also qwenvlroitest, the plugin's stand-in detector.
#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;

void add_box(GstBuffer* buffer, const char* label, int x, int y, int w, int h, int id) {
  GstVideoRegionOfInterestMeta* m = gst_buffer_add_video_region_of_interest_meta(buffer, label, x, y, w, h);
  m->id = id;
}

struct Crop {
  int x, y, w, h;
};

// The engine API asked about `crop` of `frame` (planes offset by hand, as a reader of the layout would).
Result ask_crop(const TestFrame& frame, const Crop& c, const std::string& prompt, int max_new_tokens) {
  FrameView v = frame.view();
  const GstVideoFormatInfo* finfo = frame.info.finfo;
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&frame.info); ++p) {
    gint comps[GST_VIDEO_MAX_COMPONENTS];
    gst_video_format_info_component(finfo, p, comps);
    const int sub_x = GST_VIDEO_FORMAT_INFO_W_SUB(finfo, comps[0]), sub_y = GST_VIDEO_FORMAT_INFO_H_SUB(finfo, comps[0]);
    v.planes[p] += (c.y >> sub_y) * v.strides[p] + (c.x >> sub_x) * GST_VIDEO_FORMAT_INFO_PSTRIDE(finfo, comps[0]);
  }
  v.width = c.w;
  v.height = c.h;
  Request request;
  request.images.push_back(v);
  request.prompt = prompt;
  return ask_engine(std::move(request), max_new_tokens);
}

void expect_box(const GstStructure* meta, int id, const char* label, const Crop& c) {
  EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_ROI_ID), id);
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_ROI_TYPE), label);
  EXPECT_EQ(u32(meta, GST_QWENVL_FIELD_ROI_X), static_cast<guint>(c.x));
  EXPECT_EQ(u32(meta, GST_QWENVL_FIELD_ROI_Y), static_cast<guint>(c.y));
  EXPECT_EQ(u32(meta, GST_QWENVL_FIELD_ROI_WIDTH), static_cast<guint>(c.w));
  EXPECT_EQ(u32(meta, GST_QWENVL_FIELD_ROI_HEIGHT), static_cast<guint>(c.h));
}

const GstStructure* with_roi_id(const std::vector<GstStructure*>& metas, int id) {
  for (const GstStructure* m : metas)
    if (i32(m, GST_QWENVL_FIELD_ROI_ID) == id) return m;
  return nullptr;
}

TEST(ElementRoi, EachBoxIsAskedAboutItsCrop) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 41, 30, 3, 4);
  Rig rig("mode=sync temperature=0 max-new-tokens=5 roi=true interval=0");
  g_object_set(rig.element, "prompt", "What is this {label}?", nullptr);
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstBuffer* in = frame.buffer(0, kFrame);
  add_box(in, "cat", 4, 3, 15, 11, 5);        // inside: odd sizes kept
  add_box(in, "dog", 30, 20, 40, 40, 9);      // clamped to 11 x 10
  add_box(in, "far", 100, 100, 5, 5, 12);     // outside: not asked
  GstBuffer* out = rig.push_pull(in);
  ASSERT_NE(out, nullptr);
  std::vector<GstStructure*> metas = metas_of(out);
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(metas.size(), 2u);
  ASSERT_EQ(messages.size(), 2u);
  ASSERT_EQ(rig.signalled.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(same_fields(metas[i], messages[i]));
    EXPECT_TRUE(same_fields(metas[i], rig.signalled[i]));
  }
  const GstStructure* cat = with_roi_id(metas, 5);
  const GstStructure* dog = with_roi_id(metas, 9);
  ASSERT_NE(cat, nullptr);
  ASSERT_NE(dog, nullptr);
  EXPECT_NE(u64(cat, GST_QWENVL_FIELD_REQUEST_ID), u64(dog, GST_QWENVL_FIELD_REQUEST_ID));
  expect_box(cat, 5, "cat", {4, 3, 15, 11});
  expect_box(dog, 9, "dog", {30, 20, 11, 10});
  EXPECT_EQ(str(cat, GST_QWENVL_FIELD_PROMPT), "What is this cat?");
  EXPECT_EQ(str(dog, GST_QWENVL_FIELD_PROMPT), "What is this dog?");
  const Result cat_direct = ask_crop(frame, {4, 3, 15, 11}, "What is this cat?", 5);
  const Result dog_direct = ask_crop(frame, {30, 20, 11, 10}, "What is this dog?", 5);
  ASSERT_EQ(cat_direct.status, Status::kAnswered) << cat_direct.error;
  EXPECT_EQ(token_ids(cat), cat_direct.token_ids);
  EXPECT_EQ(i32(cat, GST_QWENVL_FIELD_PROMPT_TOKENS), cat_direct.prompt_tokens);
  EXPECT_EQ(token_ids(dog), dog_direct.token_ids);
  gst_buffer_unref(out);
  free_all(metas);
  free_all(messages);

  // A frame without boxes is not asked.
  out = rig.push_pull(frame.buffer(kFrame, kFrame));
  EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u);
  gst_buffer_unref(out);
}

class RoiYuv : public ::testing::TestWithParam<GstVideoFormat> {};

TEST_P(RoiYuv, CropsStartOnEvenCoordinates) {
  const TestFrame frame = make_frame(GetParam(), 37, 25, 5, 3);
  Rig rig("mode=sync temperature=0 max-new-tokens=4 roi=true roi-labels=car,,bus");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstBuffer* in = frame.buffer(0, kFrame);
  add_box(in, "car", 5, 3, 11, 9, 1);     // -> 4, 2, 12 x 10
  add_box(in, "person", 0, 0, 8, 8, 2);   // filtered out
  add_box(in, "bus", 30, 20, 20, 20, 3);  // -> 30, 20, 7 x 5 (clamped, odd)
  GstBuffer* out = rig.push_pull(in);
  std::vector<GstStructure*> metas = metas_of(out);
  ASSERT_EQ(metas.size(), 2u);
  const GstStructure* car = with_roi_id(metas, 1);
  const GstStructure* bus = with_roi_id(metas, 3);
  ASSERT_NE(car, nullptr);
  ASSERT_NE(bus, nullptr);
  expect_box(car, 1, "car", {4, 2, 12, 10});
  expect_box(bus, 3, "bus", {30, 20, 7, 5});
  EXPECT_EQ(token_ids(car), ask_crop(frame, {4, 2, 12, 10}, "Describe this image.", 4).token_ids);
  EXPECT_EQ(token_ids(bus), ask_crop(frame, {30, 20, 7, 5}, "Describe this image.", 4).token_ids);
  free_all(metas);
  gst_buffer_unref(out);
}

INSTANTIATE_TEST_SUITE_P(Formats, RoiYuv, ::testing::Values(GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_I420),
                         [](const auto& info) { return std::string(gst_video_format_to_string(info.param)); });

TEST(QwenVLRoiTest, AttachesItsBoxesToEveryBuffer) {
  init_gst();
  GstHarness* h = gst_harness_new_parse("qwenvlroitest boxes=\"1,2,3,4,cat; 10,20,30,40\"");
  ASSERT_NE(h, nullptr);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=64,height=48,framerate=10/1");
  for (int i = 0; i < 2; ++i) {
    GstBuffer* out = gst_harness_push_and_pull(h, gst_buffer_new_allocate(nullptr, 64 * 48 * 3, nullptr));
    ASSERT_NE(out, nullptr);
    std::vector<const GstVideoRegionOfInterestMeta*> rois;
    gpointer state = nullptr;
    while (GstMeta* m = gst_buffer_iterate_meta_filtered(out, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
      rois.push_back(reinterpret_cast<const GstVideoRegionOfInterestMeta*>(m));
    ASSERT_EQ(rois.size(), 2u);
    EXPECT_EQ(rois[0]->id, 0);
    EXPECT_STREQ(g_quark_to_string(rois[0]->roi_type), "cat");
    EXPECT_EQ(rois[0]->x, 1u);
    EXPECT_EQ(rois[0]->y, 2u);
    EXPECT_EQ(rois[0]->w, 3u);
    EXPECT_EQ(rois[0]->h, 4u);
    EXPECT_EQ(rois[1]->id, 1);
    EXPECT_STREQ(g_quark_to_string(rois[1]->roi_type), "region");
    EXPECT_EQ(rois[1]->w, 30u);
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
}

TEST(QwenVLRoiTest, MalformedBoxesAreRefused) {
  init_gst();
  GstElement* e = gst_element_factory_make("qwenvlroitest", nullptr);
  ASSERT_NE(e, nullptr);
  g_object_set(e, "boxes", "1,2,3,4,a", nullptr);
  // g_warning is not fatal here: the value is refused and the old one kept.
  const GLogLevelFlags fatal = g_log_set_always_fatal(static_cast<GLogLevelFlags>(G_LOG_FATAL_MASK));
  for (const char* bad : {"1,2,3", "a,b,c,d", "1,2,-3,4", "1,2,3,4x"}) {
    g_object_set(e, "boxes", bad, nullptr);
    gchar* now = nullptr;
    g_object_get(e, "boxes", &now, nullptr);
    EXPECT_STREQ(now, "1,2,3,4,a") << bad;
    g_free(now);
  }
  g_log_set_always_fatal(fatal);
  gst_object_unref(e);
}

}  // namespace
}  // namespace qwenvl::test
