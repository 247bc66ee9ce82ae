/**
 * SECTION:element-qwenvlroitest
 * @title: qwenvlroitest
 *
 * Attaches the same GstVideoRegionOfInterestMeta boxes to every video buffer, as a detector would:
 * a stand-in for tests and demos of qwenvl's roi mode. The i-th box of `boxes` gets id i.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=10 ! qwenvlroitest boxes="0,0,32,32,cat;32,0,32,32,dog" \
 *     ! qwenvl model=/models/Qwen2.5-VL-3B-Instruct roi=true ! fakesink
 * ]|
 */
#include "gstqwenvlroitest.h"

#include <gst/video/video.h>

#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY_STATIC(gst_qwenvl_roi_test_debug);
#define GST_CAT_DEFAULT gst_qwenvl_roi_test_debug

namespace {

struct Box {
  int x, y, w, h;
  std::string label;
};

// "x,y,w,h,label;..." (label optional, default "region"); false and *error set when malformed.
bool parse_boxes(const std::string& text, std::vector<Box>* boxes, std::string* error) {
  std::vector<Box> out;
  gchar** entries = g_strsplit(text.c_str(), ";", -1);
  bool ok = true;
  for (gchar** e = entries; ok && *e != nullptr; ++e) {
    gchar* entry = g_strstrip(*e);
    if (*entry == '\0') continue;
    gchar** fields = g_strsplit(entry, ",", 5);
    const guint n = g_strv_length(fields);
    Box box{0, 0, 0, 0, "region"};
    int* numbers[] = {&box.x, &box.y, &box.w, &box.h};
    if (n < 4) ok = false;
    for (guint i = 0; ok && i < 4; ++i) {
      gchar* end = nullptr;
      const gint64 v = g_ascii_strtoll(g_strstrip(fields[i]), &end, 10);
      if (end == fields[i] || *end != '\0' || v < (i < 2 ? G_MININT : 0) || v > G_MAXINT) ok = false;
      else *numbers[i] = static_cast<int>(v);
    }
    if (ok && n == 5 && *g_strstrip(fields[4]) != '\0') box.label = fields[4];
    if (!ok) *error = std::string("'") + entry + "' is not x,y,w,h[,label] with integers (w, h >= 0)";
    g_strfreev(fields);
    out.push_back(box);
  }
  g_strfreev(entries);
  if (ok) *boxes = std::move(out);
  return ok;
}

}  // namespace

struct _GstQwenVLRoiTest {
  GstBaseTransform parent;
  std::mutex* lock;
  std::string* text;
  std::vector<Box>* boxes;
};

enum { PROP_0, PROP_BOXES };

G_DEFINE_TYPE(GstQwenVLRoiTest, gst_qwenvl_roi_test, GST_TYPE_BASE_TRANSFORM)
GST_ELEMENT_REGISTER_DEFINE(qwenvlroitest, "qwenvlroitest", GST_RANK_NONE, GST_TYPE_QWENVL_ROI_TEST)

static GstStaticPadTemplate roi_test_sink = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw"));
static GstStaticPadTemplate roi_test_src = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw"));

static GstFlowReturn gst_qwenvl_roi_test_transform_ip(GstBaseTransform* trans, GstBuffer* buffer) {
  GstQwenVLRoiTest* self = GST_QWENVL_ROI_TEST(trans);
  std::lock_guard<std::mutex> guard(*self->lock);
  for (size_t i = 0; i < self->boxes->size(); ++i) {
    const Box& b = (*self->boxes)[i];
    GstVideoRegionOfInterestMeta* meta =
        gst_buffer_add_video_region_of_interest_meta(buffer, b.label.c_str(), b.x, b.y, b.w, b.h);
    meta->id = static_cast<gint>(i);
  }
  return GST_FLOW_OK;
}

static void gst_qwenvl_roi_test_set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  GstQwenVLRoiTest* self = GST_QWENVL_ROI_TEST(object);
  if (id != PROP_BOXES) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    return;
  }
  const gchar* s = g_value_get_string(value);
  const std::string text = s ? s : "";
  std::vector<Box> boxes;
  std::string error;
  if (!parse_boxes(text, &boxes, &error)) {
    g_warning("qwenvlroitest: boxes %s; the boxes stay as they were", error.c_str());
    return;
  }
  std::lock_guard<std::mutex> guard(*self->lock);
  *self->text = text;
  *self->boxes = std::move(boxes);
}

static void gst_qwenvl_roi_test_get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  GstQwenVLRoiTest* self = GST_QWENVL_ROI_TEST(object);
  if (id != PROP_BOXES) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    return;
  }
  std::lock_guard<std::mutex> guard(*self->lock);
  g_value_set_string(value, self->text->c_str());
}

static void gst_qwenvl_roi_test_finalize(GObject* object) {
  GstQwenVLRoiTest* self = GST_QWENVL_ROI_TEST(object);
  delete self->boxes;
  delete self->text;
  delete self->lock;
  G_OBJECT_CLASS(gst_qwenvl_roi_test_parent_class)->finalize(object);
}

static void gst_qwenvl_roi_test_init(GstQwenVLRoiTest* self) {
  self->lock = new std::mutex();
  self->text = new std::string();
  self->boxes = new std::vector<Box>();
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
}

static void gst_qwenvl_roi_test_class_init(GstQwenVLRoiTestClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(gst_qwenvl_roi_test_debug, "qwenvlroitest", 0, "Fixed region-of-interest boxes");
  gobject_class->set_property = gst_qwenvl_roi_test_set_property;
  gobject_class->get_property = gst_qwenvl_roi_test_get_property;
  gobject_class->finalize = gst_qwenvl_roi_test_finalize;
  g_object_class_install_property(
      gobject_class, PROP_BOXES,
      g_param_spec_string("boxes", "Boxes",
                          "Boxes attached to every buffer as GstVideoRegionOfInterestMeta: \"x,y,w,h,label;...\" in pixels "
                          "(label optional, default \"region\"; the i-th box gets id i); empty: none. A malformed value is "
                          "refused with a warning",
                          "", static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  gst_element_class_add_static_pad_template(element_class, &roi_test_sink);
  gst_element_class_add_static_pad_template(element_class, &roi_test_src);
  gst_element_class_set_static_metadata(
      element_class, "qwenvl region-of-interest test source", "Filter/Video",
      "Attaches fixed GstVideoRegionOfInterestMeta boxes to every buffer, standing in for a detector before "
      "qwenvl roi=true. Example: videotestsrc ! qwenvlroitest boxes=\"0,0,32,32,cat\" ! qwenvl roi=true ... ! fakesink",
      "qwenvl developers");
  trans_class->transform_ip = gst_qwenvl_roi_test_transform_ip;
  trans_class->passthrough_on_same_caps = FALSE;
}
