// Helpers for the qwenvl element tests of tests/gst/ (overlay, CLI parity): frames with padded rows
// as GstBuffers, and an element driven through GstHarness with its bus and result signal recorded.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "gstqwenvlmeta.h"
#include "test_util.h"

namespace qwenvl::test {

inline std::string tiny_a_dir() { return (fixtures_dir() / "models" / "tiny-a").string(); }

inline void init_gst() {
  static const bool once = [] {
    gst_init(nullptr, nullptr);
    return true;
  }();
  (void)once;
}

// A frame in the test's memory; rows padded past their pixels with 0xEE (a reader or writer that
// ignores strides shows there).
struct PaddedFrame {
  GstVideoInfo info;
  std::vector<uint8_t> bytes;

  GstBuffer* buffer(GstClockTime pts, GstClockTime duration) const {
    GstBuffer* b = gst_buffer_new_memdup(bytes.data(), bytes.size());
    gst_buffer_add_video_meta_full(b, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT(&info), GST_VIDEO_INFO_WIDTH(&info),
                                   GST_VIDEO_INFO_HEIGHT(&info), GST_VIDEO_INFO_N_PLANES(&info),
                                   const_cast<gsize*>(info.offset), const_cast<gint*>(info.stride));
    GST_BUFFER_PTS(b) = pts;
    GST_BUFFER_DURATION(b) = duration;
    return b;
  }
  std::string caps() const {
    return std::string("video/x-raw,format=") + gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)) +
           ",width=" + std::to_string(GST_VIDEO_INFO_WIDTH(&info)) +
           ",height=" + std::to_string(GST_VIDEO_INFO_HEIGHT(&info)) + ",framerate=30/1";
  }
  int width() const { return GST_VIDEO_INFO_WIDTH(&info); }
  int height() const { return GST_VIDEO_INFO_HEIGHT(&info); }
};

// A smooth pattern (different per plane and `variant`) with `row_padding` bytes after each row.
inline PaddedFrame make_padded_frame(GstVideoFormat format, int width, int height, int row_padding, int variant = 0) {
  PaddedFrame f;
  gst_video_info_set_format(&f.info, format, width, height);
  GstVideoAlignment align;
  gst_video_alignment_reset(&align);
  align.padding_right = row_padding;
  gst_video_info_align(&f.info, &align);
  f.bytes.assign(GST_VIDEO_INFO_SIZE(&f.info), 0xEE);
  const GstVideoFormatInfo* finfo = f.info.finfo;
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&f.info); ++p) {
    gint comps[GST_VIDEO_MAX_COMPONENTS];
    gst_video_format_info_component(finfo, p, comps);
    const int rows = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT(finfo, comps[0], height);
    const int cols = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH(finfo, comps[0], width) * GST_VIDEO_FORMAT_INFO_PSTRIDE(finfo, comps[0]);
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x)
        f.bytes[f.info.offset[p] + y * f.info.stride[p] + x] =
            static_cast<uint8_t>((x * 7 + y * 13 + p * 50 + variant * 91) % 256);
  }
  return f;
}

// The element with a bus and a result-signal log, its video pads in a harness.
struct ElementRig {
  GstElement* element = nullptr;
  GstBus* bus = nullptr;
  GstHarness* video = nullptr;
  std::vector<GstStructure*> signalled;

  explicit ElementRig(const std::string& properties) {
    init_gst();
    element = gst_element_factory_make("qwenvl", nullptr);
    if (element == nullptr) throw std::runtime_error("no qwenvl element: is GST_PLUGIN_PATH the build tree's gst-plugin?");
    gst_util_set_object_arg(G_OBJECT(element), "model", tiny_a_dir().c_str());
    set(properties);
    bus = gst_bus_new();
    gst_element_set_bus(element, bus);
    g_signal_connect(element, "result", G_CALLBACK(+[](GstElement*, const GstStructure* s, gpointer self) {
                       static_cast<ElementRig*>(self)->signalled.push_back(gst_structure_copy(s));
                     }),
                     this);
    video = gst_harness_new_with_element(element, "sink", "src");
  }
  ~ElementRig() {
    if (video) gst_harness_teardown(video);
    for (auto* s : signalled) gst_structure_free(s);
    gst_element_set_bus(element, nullptr);
    gst_object_unref(bus);
    gst_object_unref(element);
  }
  ElementRig(const ElementRig&) = delete;
  ElementRig& operator=(const ElementRig&) = delete;

  // "name=value name=value", as gst-launch-1.0 parses them (values without spaces).
  void set(const std::string& properties) {
    gchar** pairs = g_strsplit(properties.c_str(), " ", -1);
    for (gchar** p = pairs; *p; ++p) {
      if (**p == '\0') continue;
      gchar** kv = g_strsplit(*p, "=", 2);
      gst_util_set_object_arg(G_OBJECT(element), kv[0], kv[1]);
      g_strfreev(kv);
    }
    g_strfreev(pairs);
  }
  guint64 stat(const char* field) const {
    GstStructure* s = nullptr;
    g_object_get(element, "stats", &s, nullptr);
    guint64 v = 0;
    if (!gst_structure_get_uint64(s, field, &v)) {
      guint u = 0;
      gst_structure_get_uint(s, field, &u);
      v = u;
    }
    gst_structure_free(s);
    return v;
  }
  // The element messages named `name` posted so far (the caller frees them).
  std::vector<GstStructure*> messages(const char* name) {
    std::vector<GstStructure*> out;
    while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
      const GstStructure* s = gst_message_get_structure(m);
      if (gst_structure_has_name(s, name)) out.push_back(gst_structure_copy(s));
      gst_message_unref(m);
    }
    return out;
  }
};

inline std::vector<int32_t> token_ids_of(const GstStructure* s) {
  std::vector<int32_t> ids;
  const GValue* array = gst_structure_get_value(s, GST_QWENVL_FIELD_TOKEN_IDS);
  for (guint i = 0; array && i < gst_value_array_get_size(array); ++i)
    ids.push_back(g_value_get_int(gst_value_array_get_value(array, i)));
  return ids;
}

inline std::string string_of(const GstStructure* s, const char* field) {
  const char* v = gst_structure_get_string(s, field);
  return v ? v : "";
}

inline std::vector<uint8_t> buffer_bytes(GstBuffer* buffer) {
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) throw std::runtime_error("cannot map a buffer");
  std::vector<uint8_t> out(map.data, map.data + map.size);
  gst_buffer_unmap(buffer, &map);
  return out;
}

}  // namespace qwenvl::test
