// Delivering the qwenvl element's answers downstream (see answer_delivery.h).
#include "answer_delivery.h"

#include <gst/video/video.h>

#include <cmath>
#include <string>

#ifdef QWENVL_HAVE_OPENCV
#include "caption_overlay.h"
#endif
#include "gstqwenvlmeta.h"
#include "json_answer.h"

GST_DEBUG_CATEGORY_EXTERN(gst_qwenvl_debug);
#define GST_CAT_DEFAULT gst_qwenvl_debug

namespace qwenvl::gst {
namespace {

// One answer's fields: the message, the signal and the meta carry the same structure.
GstStructure* answer_structure(const char* name, const Answer& a, bool alert) {
  GValue ids = G_VALUE_INIT;
  gst_value_array_init(&ids, a.result.token_ids.size());
  for (int32_t id : a.result.token_ids) {
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_INT);
    g_value_set_int(&v, id);
    gst_value_array_append_and_take_value(&ids, &v);
  }
  GstStructure* s = gst_structure_new(
      name, GST_QWENVL_FIELD_TEXT, G_TYPE_STRING, a.result.text.c_str(), GST_QWENVL_FIELD_PROMPT, G_TYPE_STRING,
      a.ticket.prompt.c_str(), GST_QWENVL_FIELD_STREAM_ID, G_TYPE_STRING, a.ticket.stream_id.c_str(),
      GST_QWENVL_FIELD_REQUEST_ID, G_TYPE_UINT64, static_cast<guint64>(a.ticket.request_id), GST_QWENVL_FIELD_PTS, G_TYPE_UINT64,
      static_cast<guint64>(a.ticket.pts), GST_QWENVL_FIELD_LATENCY, G_TYPE_UINT64,
      static_cast<guint64>(std::llround(a.result.total_ms * 1e6)), GST_QWENVL_FIELD_TTFT, G_TYPE_UINT64,
      static_cast<guint64>(std::llround(a.result.ttft_ms * 1e6)), GST_QWENVL_FIELD_PROMPT_TOKENS, G_TYPE_INT,
      a.result.prompt_tokens, GST_QWENVL_FIELD_GENERATED_TOKENS, G_TYPE_INT, a.result.generated_tokens,
      GST_QWENVL_FIELD_FINISH_REASON, G_TYPE_STRING, a.result.finish_reason.c_str(), GST_QWENVL_FIELD_ALERT,
      G_TYPE_BOOLEAN, alert ? TRUE : FALSE, nullptr);
  gst_structure_take_value(s, GST_QWENVL_FIELD_TOKEN_IDS, &ids);
  gst_structure_set(s, GST_QWENVL_FIELD_INCOMPLETE, G_TYPE_BOOLEAN, a.result.incomplete ? TRUE : FALSE, nullptr);
  if (a.result.finish_reason == "stop_string")
    gst_structure_set(s, GST_QWENVL_FIELD_STOP_STRING, G_TYPE_STRING, a.result.stop_string.c_str(), nullptr);
  GValue parsed = G_VALUE_INIT;
  if (a.ticket.json_answer && !a.result.incomplete && json_answer_value(a.result.text, &parsed))
    gst_structure_take_value(s, GST_QWENVL_FIELD_ANSWER, &parsed);
  const Ticket& t = a.ticket;
  if (t.clip_frames > 0)
    gst_structure_set(s, GST_QWENVL_FIELD_WINDOW_START, G_TYPE_UINT64, static_cast<guint64>(t.window_start),
                      GST_QWENVL_FIELD_WINDOW_END, G_TYPE_UINT64, static_cast<guint64>(t.window_end),
                      GST_QWENVL_FIELD_CLIP_FRAMES, G_TYPE_UINT, t.clip_frames, nullptr);
  if (t.has_roi)
    gst_structure_set(s, GST_QWENVL_FIELD_ROI_ID, G_TYPE_INT, t.roi_id, GST_QWENVL_FIELD_ROI_TYPE, G_TYPE_STRING,
                      t.roi_type.c_str(), GST_QWENVL_FIELD_ROI_X, G_TYPE_UINT, static_cast<guint>(t.roi_x),
                      GST_QWENVL_FIELD_ROI_Y, G_TYPE_UINT, static_cast<guint>(t.roi_y), GST_QWENVL_FIELD_ROI_WIDTH,
                      G_TYPE_UINT, static_cast<guint>(t.roi_width), GST_QWENVL_FIELD_ROI_HEIGHT, G_TYPE_UINT,
                      static_cast<guint>(t.roi_height), nullptr);
  return s;
}

// alert-when: whether the answer is an alert. A regex that gives up on an answer (a match limit) is
// no alert, and said in the log.
bool is_alert(GstQwenVL* self, const Answer& a, const Settings& s) {
  if (!s.alert) return false;
  const AlertMatch match = s.alert->evaluate(a.result.text);
  if (!match.error.empty())
    GST_WARNING_OBJECT(self, "alert-when '%s' on request %" G_GUINT64_FORMAT ": %s", s.alert_when.c_str(),
                       static_cast<guint64>(a.ticket.request_id), match.error.c_str());
  return match.matched;
}

// The qwenvl-alert message: the answer's fields (alert=true) and the condition it met.
GstMessage* alert_message(GstQwenVL* self, const GstStructure* answer, const Settings& s) {
  GstStructure* fields = gst_structure_copy(answer);
  gst_structure_set_name(fields, "qwenvl-alert");
  gst_structure_set(fields, "alert-when", G_TYPE_STRING, s.alert_when.c_str(), nullptr);
  return gst_message_new_element(GST_OBJECT(self), fields);
}

// Whether the latest answer still holds at `pts` (caption-duration); text_src and overlay agree.
bool caption_current(const Streaming& st, GstClockTime pts, const Settings& s) {
  return st.have_caption && (s.caption_duration == 0 || !GST_CLOCK_TIME_IS_VALID(st.caption_start) ||
                             !GST_CLOCK_TIME_IS_VALID(pts) || pts < st.caption_start + s.caption_duration);
}

// The text_src stream follows the video: per outgoing buffer, the current caption as a text buffer
// with that buffer's pts and duration, or a GAP event when there is none (textoverlay never
// waits). Unlinked, it costs nothing.
void push_text(GstQwenVL* self, GstClockTime pts, GstClockTime duration, const Settings& s) {
  if (!gst_pad_is_linked(self->text_src) || !GST_CLOCK_TIME_IS_VALID(pts)) return;
  Streaming& st = self->state->streaming;
  if (!caption_current(st, pts, s)) {
    gst_pad_push_event(self->text_src, gst_event_new_gap(pts, duration));
    return;
  }
  GstBuffer* text = gst_buffer_new_memdup(st.caption.data(), st.caption.size());
  GST_BUFFER_PTS(text) = pts;
  GST_BUFFER_DURATION(text) = duration;
  const GstFlowReturn ret = gst_pad_push(self->text_src, text);
  if (ret != GST_FLOW_OK) GST_DEBUG_OBJECT(self, "text_src push: %s", gst_flow_get_name(ret));
}

// Sync mode: an answer slower than the latency reported so far raises it (the latency message makes
// the pipeline query it again).
void check_latency(GstQwenVL* self, const Answer& a, const Settings& s) {
  if (s.mode != kModeSync) return;
  const guint64 latency = static_cast<guint64>(std::llround(a.result.total_ms * 1e6));
  guint64 reported = self->state->reported_latency.load();
  if (latency <= reported) return;
  self->state->reported_latency.store(latency);
  if (!self->state->streaming.warned_latency) {
    self->state->streaming.warned_latency = true;
    GST_ELEMENT_WARNING(self, CORE, CLOCK, ("qwenvl: an answer took %" GST_TIME_FORMAT ", more than the %" GST_TIME_FORMAT
                                            " of latency reported; the latency is raised to it",
                                            GST_TIME_ARGS(latency), GST_TIME_ARGS(reported)),
                        ("sync mode adds the inference time to the pipeline's latency"));
  }
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
}

}  // namespace

void deliver_answers(GstQwenVL* self, const Runtime& rt, GstBuffer* buffer, GstClockTime pts, GstClockTime duration,
                     const Settings& s) {
  Streaming& st = self->state->streaming;
  for (Answer& a : rt.tracker->take_ready()) {
    if (a.result.status != qwenvl::Status::kAnswered) {
      GST_ELEMENT_WARNING(self, STREAM, FAILED,
                          ("qwenvl: the request about the frame at %" GST_TIME_FORMAT " %s: %s", GST_TIME_ARGS(a.ticket.pts),
                           qwenvl::status_name(a.result.status), a.result.error.c_str()),
                          ("request %" G_GUINT64_FORMAT, static_cast<guint64>(a.ticket.request_id)));
      // Applications waiting for an id (an `ask`) learn that it ended without an answer.
      gst_element_post_message(
          GST_ELEMENT(self),
          gst_message_new_element(
              GST_OBJECT(self),
              gst_structure_new("qwenvl-failed", GST_QWENVL_FIELD_REQUEST_ID, G_TYPE_UINT64,
                                static_cast<guint64>(a.ticket.request_id), GST_QWENVL_FIELD_STREAM_ID, G_TYPE_STRING,
                                a.ticket.stream_id.c_str(), GST_QWENVL_FIELD_PROMPT, G_TYPE_STRING,
                                a.ticket.prompt.c_str(), GST_QWENVL_FIELD_PTS, G_TYPE_UINT64,
                                static_cast<guint64>(a.ticket.pts), "status", G_TYPE_STRING,
                                qwenvl::status_name(a.result.status), "error", G_TYPE_STRING, a.result.error.c_str(),
                                nullptr)));
      continue;
    }
    if (a.ticket.remember && s.history_size > 0) {
      st.history.push_back({a.ticket.prompt, a.result.text});
      while (st.history.size() > s.history_size) st.history.pop_front();
    }
    const bool alert = is_alert(self, a, s);
    GstStructure* fields = answer_structure("qwenvl-result", a, alert);
    if (buffer != nullptr) gst_buffer_add_qwenvl_meta(buffer, fields);
    g_signal_emit(self, element_signals[SIGNAL_RESULT], 0, fields);
    GstMessage* alerting = alert ? alert_message(self, fields, s) : nullptr;
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), fields));
    if (alerting != nullptr) gst_element_post_message(GST_ELEMENT(self), alerting);
    st.caption = a.result.text;
    st.caption_start = pts;
    st.have_caption = true;
    check_latency(self, a, s);
  }
  push_text(self, pts, duration, s);
}

GstStructure* drop_message(GstClockTime pts, const char* reason, const RequestTracker& tracker) {
  return gst_structure_new("qwenvl-dropped", "pts", G_TYPE_UINT64, static_cast<guint64>(pts), "reason", G_TYPE_STRING,
                           reason, "dropped", G_TYPE_UINT64, static_cast<guint64>(tracker.dropped()), nullptr);
}

void post_drop(GstQwenVL* self, GstClockTime pts, const char* reason, const RequestTracker& tracker) {
  gst_element_post_message(GST_ELEMENT(self),
                           gst_message_new_element(GST_OBJECT(self), drop_message(pts, reason, tracker)));
}

void draw_overlay(GstQwenVL* self, GstBuffer* buffer, GstClockTime pts, const Settings& s) {
  Streaming& st = self->state->streaming;
  if (!s.overlay || !caption_current(st, pts, s)) return;
#ifdef QWENVL_HAVE_OPENCV
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &st.info, buffer, GST_MAP_WRITE)) {
    if (!st.warned_overlay)
      GST_ELEMENT_WARNING(self, STREAM, FAILED, ("qwenvl could not map a frame for writing its caption"), (nullptr));
    st.warned_overlay = true;
    return;
  }
  OverlayFrame f;
  f.format = st.format;
  f.width = GST_VIDEO_FRAME_WIDTH(&frame);
  f.height = GST_VIDEO_FRAME_HEIGHT(&frame);
  for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES(&frame) && i < 3; ++i) {
    f.planes[i] = static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, i));
    f.strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, i);
  }
  f.yuv_full_range = st.info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
  draw_caption(f, st.caption);
  gst_video_frame_unmap(&frame);
#else
  (void)buffer;
  if (!st.warned_overlay)
    GST_ELEMENT_WARNING(self, CORE, NOT_IMPLEMENTED, ("qwenvl was built without OpenCV: overlay=true draws nothing"),
                        ("install libopencv-core-dev and libopencv-imgproc-dev and rebuild, or link text_src to textoverlay"));
  st.warned_overlay = true;
#endif
}

}  // namespace qwenvl::gst
