// Turning frames into questions for the qwenvl element (see frame_questions.h).
#include "frame_questions.h"

#include <gst/video/video.h>

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "answer_delivery.h"
#include "gstqwenvlmeta.h"
#include "roi_requests.h"

GST_DEBUG_CATEGORY_EXTERN(gst_qwenvl_debug);
#define GST_CAT_DEFAULT gst_qwenvl_debug

namespace qwenvl::gst {
namespace {

// A pts as H:MM:SS.mmm, for {timestamp}.
std::string timestamp_text(GstClockTime t) {
  if (!GST_CLOCK_TIME_IS_VALID(t)) return "unknown";
  const guint64 ms = t / GST_MSECOND;
  gchar* s = g_strdup_printf("%u:%02u:%02u.%03u", static_cast<guint>(ms / 3600000), static_cast<guint>(ms / 60000 % 60),
                             static_cast<guint>(ms / 1000 % 60), static_cast<guint>(ms % 1000));
  std::string out(s);
  g_free(s);
  return out;
}

// {stream_id} and {timestamp} (the frame's pts as H:MM:SS.mmm) in a prompt.
std::string expand_placeholders(std::string text, const std::string& stream_id, GstClockTime pts) {
  const std::pair<std::string, std::string> rules[] = {{"{stream_id}", stream_id}, {"{timestamp}", timestamp_text(pts)}};
  for (const auto& [key, value] : rules) {
    size_t at = 0;
    while ((at = text.find(key, at)) != std::string::npos) {
      text.replace(at, key.size(), value);
      at += value.size();
    }
  }
  return text;
}

std::string stream_id_of(GstQwenVL* self, const Settings& s) {
  if (!s.stream_id.empty()) return s.stream_id;
  gchar* name = gst_object_get_name(GST_OBJECT(self));
  std::string out = name ? name : "";
  g_free(name);
  return out;
}

// interval: whether the frame at `pts` is asked about (single frames, or the first of a clip).
bool frame_is_due(const Streaming& st, GstClockTime pts, const Settings& s) {
  if (s.interval == 0 || !GST_CLOCK_TIME_IS_VALID(pts) || !GST_CLOCK_TIME_IS_VALID(st.last_asked_pts)) return true;
  if (pts < st.last_asked_pts) return true;  // time went back (a new segment): start over
  return pts - st.last_asked_pts >= s.interval;
}

// The caps' YUV matrix when they name one the engine knows; else kAuto (GStreamer's default by size).
qwenvl::YuvMatrix yuv_matrix(const Streaming& st) {
  if (!st.caps_colorimetry) return qwenvl::YuvMatrix::kAuto;
  switch (st.info.colorimetry.matrix) {
    case GST_VIDEO_COLOR_MATRIX_BT601: return qwenvl::YuvMatrix::kBT601;
    case GST_VIDEO_COLOR_MATRIX_BT709: return qwenvl::YuvMatrix::kBT709;
    case GST_VIDEO_COLOR_MATRIX_BT2020: return qwenvl::YuvMatrix::kBT2020;
    default: return qwenvl::YuvMatrix::kAuto;
  }
}

// A mapped frame as the engine takes it (the engine copies it inside submit()).
qwenvl::FrameView frame_view(const Streaming& st, const GstVideoFrame& frame, GstClockTime pts) {
  qwenvl::FrameView view;
  view.format = st.format;
  view.width = GST_VIDEO_FRAME_WIDTH(&frame);
  view.height = GST_VIDEO_FRAME_HEIGHT(&frame);
  for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES(&frame) && i < 3; ++i) {
    view.planes[i] = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, i));
    view.strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, i);
  }
  view.timestamp_s = GST_CLOCK_TIME_IS_VALID(pts) ? static_cast<double>(pts) / GST_SECOND : 0.0;
  view.yuv_matrix = yuv_matrix(st);
  view.yuv_full_range = st.caps_colorimetry && st.info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
  return view;
}

// A buffer too small for its caps (zero-length, truncated) is not asked: a warning naming the
// sizes, and a drop (counted, with a qwenvl-dropped message), never a silent loss.
bool map_frame(GstQwenVL* self, const GstVideoInfo& info, GstBuffer* buffer, GstVideoFrame* frame) {
  if (gst_video_frame_map(frame, &info, buffer, GST_MAP_READ)) return true;
  GST_ELEMENT_WARNING(self, STREAM, FAILED,
                      ("qwenvl: could not read a video buffer of %" G_GSIZE_FORMAT " bytes as a %dx%d %s frame (%" G_GSIZE_FORMAT
                       " bytes); it is not asked",
                       gst_buffer_get_size(buffer), GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info),
                       GST_VIDEO_INFO_NAME(&info), GST_VIDEO_INFO_SIZE(&info)),
                      ("the buffer is smaller than its caps say (zero-length or truncated)"));
  object_lock(self);
  const std::shared_ptr<RequestTracker> tracker = self->state->runtime.tracker;
  object_unlock(self);
  if (tracker) {
    tracker->count_dropped();
    post_drop(self, GST_BUFFER_PTS(buffer), "unreadable-buffer", *tracker);
  }
  return false;
}

// A request with this element's settings and `prompt` (placeholders expanded); the stream's
// earlier turns when `with_history` and history-size is set. The caller adds the media.
qwenvl::Request base_request(GstQwenVL* self, const Settings& s, const std::string& prompt, GstClockTime pts,
                             bool with_history, Ticket* ticket) {
  const std::string stream_id = stream_id_of(self, s);
  qwenvl::Request request;
  request.prompt = expand_placeholders(prompt, stream_id, pts);
  request.system_prompt = expand_placeholders(s.system_prompt, stream_id, pts);
  request.stream_id = stream_id;
  qwenvl::SamplingParams& p = request.sampling;
  if (s.max_new_tokens > 0) p.max_new_tokens = s.max_new_tokens;
  p.ignore_eos = s.ignore_eos;
  if (s.temperature >= 0) p.temperature = s.temperature;
  if (s.top_k >= 0) p.top_k = s.top_k;
  if (s.top_p >= 0) p.top_p = s.top_p;
  if (s.min_p >= 0) p.min_p = s.min_p;
  if (s.repetition_penalty > 0) p.repetition_penalty = s.repetition_penalty;
  if (s.seed >= 0) p.seed = static_cast<uint64_t>(s.seed);
  p.stop_strings = s.stop_strings;
  p.json_schema = s.json_schema;
  p.choices = s.choices;
  if (s.min_pixels > 0) request.min_pixels = s.min_pixels;
  if (s.max_pixels > 0) request.max_pixels = s.max_pixels;
  const std::deque<qwenvl::Turn>& history = self->state->streaming.history;
  if (with_history && s.history_size > 0) {
    const size_t skip = history.size() > s.history_size ? history.size() - s.history_size : 0;
    request.history.assign(history.begin() + static_cast<std::ptrdiff_t>(skip), history.end());
  }
  ticket->prompt = request.prompt;
  ticket->stream_id = stream_id;
  ticket->pts = pts;
  ticket->emit_partial = s.emit_partial != FALSE;
  ticket->remember = with_history;
  return request;
}

qwenvl::RequestId submit(GstQwenVL* self, const Runtime& rt, qwenvl::Request request, Ticket ticket) {
  const GstClockTime pts = ticket.pts;
  ticket.json_answer = !request.sampling.json_schema.empty();
  const qwenvl::RequestId id = rt.tracker->submit(*rt.shared.engine, std::move(request), std::move(ticket));
  GST_LOG_OBJECT(self, "asked about the frame at %" GST_TIME_FORMAT ": engine request %" G_GUINT64_FORMAT,
                 GST_TIME_ARGS(pts), static_cast<guint64>(id));
  return id;
}

// A frame in CUDA memory as the engine reads it in place (Runtime::cuda), with the caps' colorimetry
// and the buffer's time; nullopt when the caps are host memory or the memory cannot be read there
// (then the caller maps it for the host, and GStreamer downloads it: said once, with the reason).
// Not with overlay=true: the overlay maps the frame for the host to draw on it anyway, and with the
// memory held by the engine that write map would first copy it on the device.
std::optional<qwenvl::FrameView> device_frame_view(GstQwenVL* self, const Runtime& rt, GstBuffer* buffer,
                                                   const Settings& s) {
  Streaming& st = self->state->streaming;
  if (!st.cuda_memory || !rt.cuda) return std::nullopt;
  std::string why;
  std::optional<qwenvl::FrameView> view;
  if (s.overlay)
    why = "overlay=true draws into the frame on the host anyway";
  else
    view = rt.cuda->view(buffer, st.info, st.format, &why);
  if (!view) {
    if (!st.warned_cuda_copy)
      GST_ELEMENT_WARNING(self, STREAM, FORMAT, ("qwenvl: frames in CUDA memory are copied through host memory"),
                          ("%s", why.c_str()));
    st.warned_cuda_copy = true;
    return std::nullopt;
  }
  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  view->timestamp_s = GST_CLOCK_TIME_IS_VALID(pts) ? static_cast<double>(pts) / GST_SECOND : 0.0;
  view->yuv_matrix = yuv_matrix(st);
  view->yuv_full_range = st.caps_colorimetry && st.info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
  self->state->device_frames.fetch_add(1);
  return view;
}

// Asks `prompt` about the whole frame; `request_id` 0: a new id. Returns the engine's ids to wait for.
// Adds the streaming thread's time since `start` for one frame to stats' frame-host-time.
void count_frame_host_time(GstQwenVL* self, std::chrono::steady_clock::time_point start) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
  self->state->frame_host_ns.fetch_add(static_cast<guint64>(ns.count()));
  self->state->frames_timed.fetch_add(1);
}

// Asks `prompt` about the whole frame; `request_id` 0: a new id. Returns the engine's ids to wait for.
std::vector<qwenvl::RequestId> ask_frame(GstQwenVL* self, const Runtime& rt, GstBuffer* buffer, const Settings& s,
                                         const std::string& prompt, qwenvl::RequestId request_id) {
  const auto start = std::chrono::steady_clock::now();
  Streaming& st = self->state->streaming;
  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  if (std::optional<qwenvl::FrameView> on_device = device_frame_view(self, rt, buffer, s)) {
    Ticket ticket;
    ticket.request_id = request_id;
    qwenvl::Request request = base_request(self, s, prompt, pts, true, &ticket);
    request.images.push_back(std::move(*on_device));
    const qwenvl::RequestId id = submit(self, rt, std::move(request), std::move(ticket));
    count_frame_host_time(self, start);
    return {id};
  }
  GstVideoFrame frame;
  if (!map_frame(self, st.info, buffer, &frame)) return {};
  Ticket ticket;
  ticket.request_id = request_id;
  qwenvl::Request request = base_request(self, s, prompt, pts, true, &ticket);
  request.images.push_back(frame_view(st, frame, pts));
  const qwenvl::RequestId id = submit(self, rt, std::move(request), std::move(ticket));
  gst_video_frame_unmap(&frame);
  count_frame_host_time(self, start);
  return {id};
}

// roi mode: one request per region-of-interest box of the frame (`boxes`: roi-labels filtered
// them); the prompt's {label} becomes the box's label. Region answers stay out of the history.
std::vector<qwenvl::RequestId> ask_regions(GstQwenVL* self, const Runtime& rt, GstBuffer* buffer, const Settings& s,
                                           const std::vector<RoiBox>& boxes) {
  Streaming& st = self->state->streaming;
  if (boxes.empty()) return {};
  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  // In CUDA memory every box is a view into the one mapped frame, released with the last request.
  const std::optional<qwenvl::FrameView> on_device = device_frame_view(self, rt, buffer, s);
  GstVideoFrame frame = {};
  if (!on_device && !map_frame(self, st.info, buffer, &frame)) return {};
  const qwenvl::FrameView whole = on_device ? *on_device : frame_view(st, frame, pts);
  std::vector<qwenvl::RequestId> ids;
  for (const RoiBox& box : boxes) {
    std::string prompt = s.prompt;
    for (size_t at = 0; (at = prompt.find("{label}", at)) != std::string::npos; at += box.label.size())
      prompt.replace(at, 7, box.label);
    Ticket ticket;
    qwenvl::Request request = base_request(self, s, prompt, pts, false, &ticket);
    request.images.push_back(crop_view(whole, st.info, box));
    ticket.has_roi = true;
    ticket.roi_id = box.id;
    ticket.roi_type = box.label;
    ticket.roi_x = box.x;
    ticket.roi_y = box.y;
    ticket.roi_width = box.width;
    ticket.roi_height = box.height;
    ids.push_back(submit(self, rt, std::move(request), std::move(ticket)));
  }
  if (!on_device) gst_video_frame_unmap(&frame);
  return ids;
}

// change-threshold: whether the frame differs from the one the sampling policy last asked about by
// more than the threshold (always, when off); `thumbnail` receives the frame's, to become the next
// reference once the frame is asked. A frame that cannot be mapped counts as changed: asking it
// says why.
bool changed_enough(GstQwenVL* self, GstBuffer* buffer, const Settings& s, LumaThumbnail* thumbnail) {
  if (s.change_threshold <= 0) return true;
  Streaming& st = self->state->streaming;
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &st.info, buffer, GST_MAP_READ)) return true;
  *thumbnail = luma_thumbnail(frame_view(st, frame, GST_BUFFER_PTS(buffer)));
  gst_video_frame_unmap(&frame);
  const std::optional<double> difference = mean_abs_difference(*thumbnail, st.change_reference);
  if (difference)
    GST_LOG_OBJECT(self, "frame at %" GST_TIME_FORMAT " differs by %.3f from the last asked (change-threshold %.3f)",
                   GST_TIME_ARGS(GST_BUFFER_PTS(buffer)), *difference, s.change_threshold);
  return differs_by_more_than(*thumbnail, st.change_reference, s.change_threshold);
}

// Copies the frame into the clip being collected.
void collect_clip_frame(GstQwenVL* self, GstBuffer* buffer) {
  Streaming& st = self->state->streaming;
  GstVideoFrame frame;
  if (!map_frame(self, st.info, buffer, &frame)) return;
  if (!st.clip.add(frame, st.info, GST_BUFFER_PTS(buffer))) GST_WARNING_OBJECT(self, "could not copy a clip frame");
  gst_video_frame_unmap(&frame);
}

// The collected clip as one video request with the frames' real timestamps; the collector is reset.
std::vector<qwenvl::RequestId> ask_clip(GstQwenVL* self, const Runtime& rt, const Settings& s) {
  Streaming& st = self->state->streaming;
  const std::vector<GstBuffer*>& buffers = st.clip.buffers();
  std::vector<GstVideoFrame> frames(buffers.size());
  size_t mapped = 0;
  for (; mapped < buffers.size(); ++mapped)
    if (!map_frame(self, st.clip.info(), buffers[mapped], &frames[mapped])) break;
  std::vector<qwenvl::RequestId> ids;
  if (mapped == buffers.size()) {
    Ticket ticket;
    qwenvl::Request request = base_request(self, s, s.prompt, st.clip.window_start(), true, &ticket);
    for (size_t i = 0; i < frames.size(); ++i) request.clip.push_back(frame_view(st, frames[i], st.clip.timestamps()[i]));
    ticket.window_start = st.clip.window_start();
    ticket.window_end = st.clip.window_end();
    ticket.clip_frames = static_cast<unsigned>(frames.size());
    ids.push_back(submit(self, rt, std::move(request), std::move(ticket)));
  }
  for (size_t i = 0; i < mapped; ++i) gst_video_frame_unmap(&frames[i]);
  st.clip.reset();
  return ids;
}

// The questions of the `ask` signal queued since the last frame (queue_ask), emptying the queue.
std::deque<PendingAsk> take_asks(GstQwenVL* self) {
  std::deque<PendingAsk> asks;
  object_lock(self);
  asks.swap(self->state->asks);
  object_unlock(self);
  return asks;
}

}  // namespace

std::vector<qwenvl::RequestId> ask_about_buffer(GstQwenVL* self, const Runtime& rt, GstBuffer* buffer,
                                                const Settings& s) {
  Streaming& st = self->state->streaming;
  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  // Questions of the `ask` signal are about this frame, whatever the interval and drop policy.
  std::vector<qwenvl::RequestId> asked;
  for (const PendingAsk& q : take_asks(self)) {
    const std::vector<qwenvl::RequestId> ids = ask_frame(self, rt, buffer, s, q.prompt, q.id);
    asked.insert(asked.end(), ids.begin(), ids.end());
  }
  // A clip in progress takes the frames it wants; time that went back (a new segment) restarts.
  if (st.clip.collecting() && GST_CLOCK_TIME_IS_VALID(pts) && GST_CLOCK_TIME_IS_VALID(st.clip.window_end()) &&
      pts < st.clip.window_end())
    drop_partial_clip(self, rt, "time-went-back");
  if (st.clip.collecting()) {
    if (st.clip.wants(pts)) {
      collect_clip_frame(self, buffer);
      if (st.clip.complete()) {
        const std::vector<qwenvl::RequestId> ids = ask_clip(self, rt, s);
        asked.insert(asked.end(), ids.begin(), ids.end());
      }
    }
  } else if (frame_is_due(st, pts, s)) {
    // roi mode asks nothing about a frame without boxes: such a frame is neither compared nor kept.
    const std::vector<RoiBox> boxes =
        s.roi ? roi_boxes(buffer, st.info, parse_label_filter(s.roi_labels)) : std::vector<RoiBox>{};
    const bool has_question = !s.roi || !boxes.empty();
    LumaThumbnail thumbnail;
    if (has_question && !changed_enough(self, buffer, s, &thumbnail)) {
      rt.tracker->count_skipped_unchanged();
      return asked;  // still due: the next frame is compared in turn
    }
    bool room = rt.tracker->in_flight() < s.max_pending;
    if (!room && s.mode == kModeAsync && s.drop_policy == kDropOldest && rt.tracker->cancel_oldest_queued(*rt.shared.engine)) {
      post_drop(self, pts, "drop-oldest", *rt.tracker);
      room = true;
    }
    if (room || s.mode == kModeSync) {
      std::vector<qwenvl::RequestId> ids;
      if (s.roi) {
        ids = ask_regions(self, rt, buffer, s, boxes);
      } else if (s.clip_frames >= 2) {
        st.clip.start(pts, s.clip_frames, s.clip_duration);
        collect_clip_frame(self, buffer);
      } else {
        ids = ask_frame(self, rt, buffer, s, s.prompt, 0);
      }
      asked.insert(asked.end(), ids.begin(), ids.end());
      st.last_asked_pts = pts;
      if (has_question) st.change_reference = std::move(thumbnail);  // empty while change-threshold is off
    } else {
      rt.tracker->count_dropped();
      post_drop(self, pts, "skip-while-busy", *rt.tracker);
    }
  }
  return asked;
}

guint64 queue_ask(GstQwenVL* self, const gchar* prompt) {
  const qwenvl::RequestId id = allocate_request_id();
  object_lock(self);
  self->state->asks.push_back({id, prompt != nullptr && *prompt != '\0' ? prompt : self->state->settings.prompt});
  object_unlock(self);
  GST_DEBUG_OBJECT(self, "ask %" G_GUINT64_FORMAT ": %s", static_cast<guint64>(id), prompt ? prompt : "(prompt)");
  return id;
}

void drop_partial_clip(GstQwenVL* self, const Runtime& rt, const char* reason) {
  ClipCollector& clip = self->state->streaming.clip;
  const size_t n = clip.buffers().size();
  if (n > 0 && rt.tracker) {
    rt.tracker->count_dropped();
    GST_INFO_OBJECT(self, "the partial clip of %" G_GSIZE_FORMAT " frames from %" GST_TIME_FORMAT " is not asked: %s", n,
                    GST_TIME_ARGS(clip.window_start()), reason);
    GstStructure* s = drop_message(clip.window_start(), reason, *rt.tracker);
    gst_structure_set(s, GST_QWENVL_FIELD_CLIP_FRAMES, G_TYPE_UINT, static_cast<guint>(n), GST_QWENVL_FIELD_WINDOW_START,
                      G_TYPE_UINT64, static_cast<guint64>(clip.window_start()), GST_QWENVL_FIELD_WINDOW_END, G_TYPE_UINT64,
                      static_cast<guint64>(clip.window_end()), nullptr);
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
  }
  clip.reset();
}

void finish_partial_clip(GstQwenVL* self, const Runtime& rt, const Settings& s) {
  ClipCollector& clip = self->state->streaming.clip;
  if (clip.buffers().empty()) {
    clip.reset();
    return;
  }
  if (s.mode == kModeAsync && !s.drain_on_eos) {
    drop_partial_clip(self, rt, "eos-without-drain");
    return;
  }
  GST_INFO_OBJECT(self, "EOS: asking the partial clip of %" G_GSIZE_FORMAT " frames from %" GST_TIME_FORMAT " to %" GST_TIME_FORMAT,
                  clip.buffers().size(), GST_TIME_ARGS(clip.window_start()), GST_TIME_ARGS(clip.window_end()));
  ask_clip(self, rt, s);
}

}  // namespace qwenvl::gst
