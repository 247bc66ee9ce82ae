// min-pixels / max-pixels: passed to the engine as Request::min_pixels / max_pixels (the image token
// count follows them, as the engine API's does), changeable while PLAYING; 0 keeps the model's.
#include <cstring>
#include <iterator>
#include <optional>

#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;

Result direct(const TestFrame& frame, std::optional<int64_t> min_pixels, std::optional<int64_t> max_pixels) {
  Request request;
  request.images.push_back(frame.view());
  request.prompt = "Describe this image.";
  request.min_pixels = min_pixels;
  request.max_pixels = max_pixels;
  return ask_engine(std::move(request), 3);
}

TEST(ElementPixels, LimitsReachTheEngineAndChangeWhilePlaying) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 112, 84, 0, 3);
  Rig rig("mode=sync temperature=0 max-new-tokens=3 interval=0");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  struct Step {
    const char* properties;
    std::optional<int64_t> min_pixels, max_pixels;
  };
  // The model's own limits (3136..200704) keep 112x84; a small max shrinks it, a large min grows it.
  const Step steps[] = {{"min-pixels=0 max-pixels=0", std::nullopt, std::nullopt},
                        {"max-pixels=3136", std::nullopt, 3136},
                        {"max-pixels=0 min-pixels=40000", 40000, std::nullopt},
                        {"min-pixels=0", std::nullopt, std::nullopt}};
  std::vector<int> tokens;
  for (size_t i = 0; i < std::size(steps); ++i) {
    SCOPED_TRACE(steps[i].properties);
    rig.set(steps[i].properties);
    GstBuffer* out = rig.push_pull(frame.buffer(i * kFrame, kFrame));
    ASSERT_NE(out, nullptr);
    ASSERT_EQ(gst_buffer_count_qwenvl_meta(out), 1u);
    const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
    const Result d = direct(frame, steps[i].min_pixels, steps[i].max_pixels);
    ASSERT_EQ(d.status, Status::kAnswered) << d.error;
    EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), d.prompt_tokens);
    EXPECT_EQ(token_ids(meta), d.token_ids);
    tokens.push_back(d.prompt_tokens);
    gst_buffer_unref(out);
  }
  EXPECT_LT(tokens[1], tokens[0]) << "max-pixels shrinks the image";
  EXPECT_GT(tokens[2], tokens[0]) << "min-pixels grows it";
  EXPECT_EQ(tokens[3], tokens[0]) << "0 is the model's config again";
}

TEST(ElementPixels, PropertiesAreDocumentedWithTheirRange) {
  init_gst();
  GstElement* e = gst_element_factory_make("qwenvl", nullptr);
  ASSERT_NE(e, nullptr);
  for (const char* name : {"min-pixels", "max-pixels"}) {
    GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), name);
    ASSERT_NE(spec, nullptr) << name;
    EXPECT_TRUE(spec->flags & GST_PARAM_MUTABLE_PLAYING) << name;
    const auto* i64 = G_PARAM_SPEC_INT64(spec);
    EXPECT_EQ(i64->minimum, 0);
    EXPECT_EQ(i64->default_value, 0);
    gint64 v = -1;
    g_object_get(e, name, &v, nullptr);
    EXPECT_EQ(v, 0);
  }
  for (const char* name : {"clip-frames", "clip-duration", "roi", "roi-labels", "history-size"}) {
    GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), name);
    ASSERT_NE(spec, nullptr) << name;
    EXPECT_TRUE(spec->flags & GST_PARAM_MUTABLE_PLAYING) << name;
    EXPECT_GT(strlen(g_param_spec_get_blurb(spec)), 20u) << name;
  }
  GSignalQuery query;
  g_signal_query(g_signal_lookup("ask", G_OBJECT_TYPE(e)), &query);
  EXPECT_EQ(query.return_type, G_TYPE_UINT64);
  EXPECT_TRUE(query.signal_flags & G_SIGNAL_ACTION);
  gst_object_unref(e);
}

}  // namespace
}  // namespace qwenvl::test
