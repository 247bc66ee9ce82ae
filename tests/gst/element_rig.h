// Shared by the tests/gst/test_element_*.cpp tests: test frames with padded rows, an element in
// GstHarness with its messages and result signals collected, and the engine API asked directly.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gstqwenvlmeta.h"
#include "qwenvl/engine.h"
#include "test_util.h"

namespace qwenvl::test {

inline std::string tiny_a() { return (fixtures_dir() / "models" / "tiny-a").string(); }

inline void init_gst() {
  static const bool once = [] {
    gst_init(nullptr, nullptr);
    return true;
  }();
  (void)once;
}

// A frame with rows padded past their pixels (padding 0xEE), its pixels depending on `variant`.
struct TestFrame {
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

  FrameView view(double timestamp_s = 0.0) const {
    FrameView v;
    v.format = *pixel_format_from_name(gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)));
    v.width = GST_VIDEO_INFO_WIDTH(&info);
    v.height = GST_VIDEO_INFO_HEIGHT(&info);
    for (guint i = 0; i < GST_VIDEO_INFO_N_PLANES(&info); ++i) {
      v.planes[i] = bytes.data() + info.offset[i];
      v.strides[i] = info.stride[i];
    }
    v.timestamp_s = timestamp_s;
    return v;
  }

  int width() const { return GST_VIDEO_INFO_WIDTH(&info); }
  int height() const { return GST_VIDEO_INFO_HEIGHT(&info); }

  std::string caps(const char* framerate = "30/1") const {
    return std::string("video/x-raw,format=") + gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)) +
           ",width=" + std::to_string(GST_VIDEO_INFO_WIDTH(&info)) + ",height=" + std::to_string(GST_VIDEO_INFO_HEIGHT(&info)) +
           ",framerate=" + framerate;
  }
};

inline TestFrame make_frame(GstVideoFormat format, int width, int height, int row_padding, int variant = 0) {
  TestFrame f;
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
            static_cast<uint8_t>((x * 7 + y * 13 + p * 50 + variant * 91 + (x * y * variant) % 37) % 256);
  }
  return f;
}

// An element with a bus (messages) and a result-signal log; a harness on its video pads, and on
// its text pad when asked for.
struct Rig {
  GstElement* element = nullptr;
  GstBus* bus = nullptr;
  GstHarness* video = nullptr;
  GstHarness* text = nullptr;
  std::vector<GstStructure*> signalled;

  explicit Rig(const std::string& properties, bool with_text = false) {
    init_gst();
    element = gst_element_factory_make("qwenvl", nullptr);
    if (element == nullptr) throw std::runtime_error("no qwenvl element: is GST_PLUGIN_PATH the build tree's gst-plugin?");
    gst_util_set_object_arg(G_OBJECT(element), "model", tiny_a().c_str());
    set(properties);
    bus = gst_bus_new();
    gst_element_set_bus(element, bus);
    g_signal_connect(element, "result", G_CALLBACK(+[](GstElement*, const GstStructure* s, gpointer self) {
                       static_cast<Rig*>(self)->signalled.push_back(gst_structure_copy(s));
                     }),
                     this);
    video = gst_harness_new_with_element(element, "sink", "src");
    if (with_text) text = gst_harness_new_with_element(element, nullptr, "text_src");
  }
  ~Rig() {
    if (text) gst_harness_teardown(text);
    if (video) gst_harness_teardown(video);
    for (auto* s : signalled) gst_structure_free(s);
    gst_element_set_bus(element, nullptr);
    gst_object_unref(bus);
    gst_object_unref(element);
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  void set(const std::string& properties) {  // "name=value name=value", as gst-launch-1.0 parses
    gchar** pairs = g_strsplit(properties.c_str(), " ", -1);
    for (gchar** p = pairs; *p; ++p) {
      if (**p == '\0') continue;
      gchar** kv = g_strsplit(*p, "=", 2);
      gst_util_set_object_arg(G_OBJECT(element), kv[0], kv[1]);
      g_strfreev(kv);
    }
    g_strfreev(pairs);
  }
  // A field of the element's `stats` structure (guint64 or guint).
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
  // The next text_src buffer, or nullptr (GAP events, which come before buffers, are skipped).
  GstBuffer* next_text_buffer() { return gst_harness_try_pull(text); }
  // Pushes `in` and pulls the outgoing buffer (the caller unrefs it).
  GstBuffer* push_pull(GstBuffer* in) {
    if (gst_harness_push(video, in) != GST_FLOW_OK) return nullptr;
    return gst_harness_pull(video);
  }
  // Pushes `frame` at `pts` (sync mode) and returns the meta of the buffer that comes out (copied;
  // the caller frees it), or nullptr unless it carries exactly one.
  GstStructure* answer_of(const TestFrame& frame, GstClockTime pts, GstClockTime duration = GST_SECOND / 10) {
    GstBuffer* out = push_pull(frame.buffer(pts, duration));
    if (out == nullptr) return nullptr;
    GstStructure* s = gst_buffer_count_qwenvl_meta(out) == 1 ? gst_structure_copy(gst_buffer_get_qwenvl_meta(out)) : nullptr;
    gst_buffer_unref(out);
    return s;
  }
};

inline std::vector<uint8_t> buffer_bytes(GstBuffer* buffer) {
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) throw std::runtime_error("cannot map a buffer");
  std::vector<uint8_t> out(map.data, map.data + map.size);
  gst_buffer_unmap(buffer, &map);
  return out;
}

// Whether an EOS event is among the events waiting on the harness's sink (all of them are taken).
inline bool pull_events_saw_eos(GstHarness* h) {
  bool eos = false;
  while (GstEvent* e = gst_harness_try_pull_event(h)) {
    eos |= GST_EVENT_TYPE(e) == GST_EVENT_EOS;
    gst_event_unref(e);
  }
  return eos;
}

inline void free_all(std::vector<GstStructure*>& v) {
  for (auto* s : v) gst_structure_free(s);
  v.clear();
}
// For structures only to be discarded, e.g. free_all(rig.messages("qwenvl-result")).
inline void free_all(std::vector<GstStructure*>&& v) { free_all(v); }

// The metas of a buffer, copied (the caller frees them).
inline std::vector<GstStructure*> metas_of(GstBuffer* buffer) {
  std::vector<GstStructure*> out;
  gpointer state = nullptr;
  while (const GstStructure* s = gst_buffer_iterate_qwenvl_meta(buffer, &state)) out.push_back(gst_structure_copy(s));
  return out;
}

// Every field of `a` is in `b` with an equal value.
inline ::testing::AssertionResult same_fields(const GstStructure* a, const GstStructure* b) {
  if (gst_structure_n_fields(a) != gst_structure_n_fields(b))
    return ::testing::AssertionFailure() << gst_structure_to_string(a) << " vs " << gst_structure_to_string(b);
  for (int i = 0; i < gst_structure_n_fields(a); ++i) {
    const char* field = gst_structure_nth_field_name(a, i);
    const GValue* vb = gst_structure_get_value(b, field);
    if (vb == nullptr || gst_value_compare(gst_structure_get_value(a, field), vb) != GST_VALUE_EQUAL)
      return ::testing::AssertionFailure() << "field " << field << " differs: " << gst_structure_to_string(a) << " vs "
                                           << gst_structure_to_string(b);
  }
  return ::testing::AssertionSuccess();
}

inline std::vector<int32_t> token_ids(const GstStructure* s) {
  std::vector<int32_t> ids;
  const GValue* array = gst_structure_get_value(s, GST_QWENVL_FIELD_TOKEN_IDS);
  for (guint i = 0; array && i < gst_value_array_get_size(array); ++i)
    ids.push_back(g_value_get_int(gst_value_array_get_value(array, i)));
  return ids;
}

inline std::string str(const GstStructure* s, const char* field) {
  const char* v = gst_structure_get_string(s, field);
  return v ? v : "";
}

inline guint64 u64(const GstStructure* s, const char* field) {
  guint64 v = G_MAXUINT64;
  gst_structure_get_uint64(s, field, &v);
  return v;
}

inline guint u32(const GstStructure* s, const char* field) {
  guint v = G_MAXUINT;
  gst_structure_get_uint(s, field, &v);
  return v;
}

inline int i32(const GstStructure* s, const char* field) {
  int v = -1;
  gst_structure_get_int(s, field, &v);
  return v;
}

// The engine API asked directly (greedy), with one engine for the whole test program.
inline Result ask_engine(Request request, int max_new_tokens) {
  static std::unique_ptr<Engine> engine = [] {
    EngineOptions options;
    options.model_dir = tiny_a();
    return Engine::create(options);
  }();
  request.sampling.temperature = 0.0;
  request.sampling.max_new_tokens = max_new_tokens;
  return engine->submit(std::move(request)).result.get();
}

}  // namespace qwenvl::test
