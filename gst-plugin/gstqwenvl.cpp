/**
 * SECTION:element-qwenvl
 * @title: qwenvl
 *
 * Asks a Qwen2.5-VL model about video frames while the video passes through untouched. Each answer
 * reaches downstream in three agreeing forms: a GstQwenVLMeta on the next outgoing video buffer,
 * an element message "qwenvl-result" (and a "result" signal), and a text/x-raw buffer on the
 * text_src pad for textoverlay. Inference runs on the engine's threads, never on the streaming
 * thread; in async mode (the default) the video never waits. With overlay=true the element draws
 * the latest answer onto the video itself (OpenCV), after the frame was asked about.
 *
 * Besides interval sampling: clip-frames / clip-duration send N frames over a window as one video
 * clip (motion questions); the `ask` action signal asks about the next frame and returns the
 * request id its answer will carry; roi=true asks about each GstVideoRegionOfInterestMeta box of a
 * frame (see qwenvlroitest). history-size keeps earlier answers of the stream as context.
 * change-threshold skips due frames that look like the last one asked (a static camera costs
 * nothing); alert-when marks answers that match a regex or a JSON field condition as alerts (a
 * qwenvl-alert message, alert=true on the meta).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m videotestsrc num-buffers=60 ! qwenvl model=/models/Qwen2.5-VL-3B-Instruct \
 *     prompt="Describe this image." interval=1000000000 ! fakesink
 * ]|
 */
#include "gstqwenvl.h"

#include <gst/video/video.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "answer_delivery.h"
#include "engine_loader.h"
#include "frame_questions.h"
#include "gstqwenvl_private.h"

GST_DEBUG_CATEGORY(gst_qwenvl_debug);  // the element's one category; its other files declare it extern
#define GST_CAT_DEFAULT gst_qwenvl_debug

// The element's own types and steps: gstqwenvl_private.h, frame_questions.h, answer_delivery.h.
using namespace qwenvl::gst;

enum {
  PROP_0,
  PROP_MODEL,
  PROP_PROMPT,
  PROP_SYSTEM_PROMPT,
  PROP_STREAM_ID,
  PROP_MAX_NEW_TOKENS,
  PROP_IGNORE_EOS,
  PROP_TEMPERATURE,
  PROP_TOP_K,
  PROP_TOP_P,
  PROP_MIN_P,
  PROP_REPETITION_PENALTY,
  PROP_SEED,
  PROP_STOP_STRINGS,
  PROP_JSON_SCHEMA,
  PROP_CHOICES,
  PROP_INTERVAL,
  PROP_MODE,
  PROP_DROP_POLICY,
  PROP_MAX_PENDING,
  PROP_DRAIN_ON_EOS,
  PROP_CAPTION_DURATION,
  PROP_DEVICE,
  PROP_DEVICES,
  PROP_PLACEMENT,
  PROP_DTYPE,
  PROP_MAX_BATCH,
  PROP_ENGINE_ID,
  PROP_ENGINE_LIBRARY,
  PROP_REMOTE_URL,
  PROP_REMOTE_MODEL,
  PROP_REMOTE_API_KEY,
  PROP_REMOTE_IMAGE_FORMAT,
  PROP_REMOTE_JPEG_QUALITY,
  PROP_REMOTE_MAX_INFLIGHT,
  PROP_EMIT_PARTIAL,
  PROP_OVERLAY,
  PROP_STATS,
  PROP_CLIP_FRAMES,
  PROP_CLIP_DURATION,
  PROP_ROI,
  PROP_ROI_LABELS,
  PROP_HISTORY_SIZE,
  PROP_MIN_PIXELS,
  PROP_MAX_PIXELS,
  PROP_CHANGE_THRESHOLD,
  PROP_ALERT_WHEN,
};

guint qwenvl::gst::element_signals[N_SIGNALS];

G_DEFINE_TYPE(GstQwenVL, gst_qwenvl, GST_TYPE_BASE_TRANSFORM)
GST_ELEMENT_REGISTER_DEFINE(qwenvl, "qwenvl", GST_RANK_NONE, GST_TYPE_QWENVL)

GType gst_qwenvl_mode_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {kModeAsync, "The video never waits: frames are asked while the engine keeps up (see drop-policy)", "async"},
      {kModeSync, "Every asked frame waits for its answer, which rides on that very buffer", "sync"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstQwenVLMode", values));
  return type;
}

GType gst_qwenvl_drop_policy_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {kSkipWhileBusy, "A frame due while max-pending requests are in flight is not asked (counted as dropped)",
       "skip-while-busy"},
      {kDropOldest,
       "A frame due while max-pending requests are in flight replaces the oldest of them not yet admitted by the "
       "engine (that one is cancelled and counted as dropped); a request already running is never cancelled, so when "
       "all of them run the frame is not asked (counted as dropped): the stream is answered as fast as the engine allows",
       "drop-oldest"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstQwenVLDropPolicy", values));
  return type;
}

GType gst_qwenvl_dtype_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {{kDtypeAuto, "bfloat16 on CUDA, float32 on the CPU", "auto"},
                                      {kDtypeFloat32, "32-bit floats", "float32"},
                                      {kDtypeBfloat16, "bfloat16", "bfloat16"},
                                      {kDtypeFloat16, "float16", "float16"},
                                      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstQwenVLDtype", values));
  return type;
}

GType gst_qwenvl_placement_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {kPlacementAuto, "replicas where every device holds the model and that is faster, else a pipeline", "auto"},
      {kPlacementPipeline, "contiguous ranges of the layers, one stage per device", "pipeline"},
      {kPlacementReplicas, "a whole model per device, requests shared between them", "replicas"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstQwenVLPlacement", values));
  return type;
}

GType gst_qwenvl_remote_image_format_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {kRemotePng, "PNG: lossless, the server sees the frame's exact pixels (answers equal the local engine's)", "png"},
      {kRemoteJpeg, "JPEG at remote-jpeg-quality: several times fewer bytes on the wire, not the same pixels", "jpeg"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstQwenVLRemoteImageFormat", values));
  return type;
}

namespace {

const char* placement_name(Placement placement) {
  switch (placement) {
    case kPlacementPipeline: return "pipeline";
    case kPlacementReplicas: return "replicas";
    default: return "auto";
  }
}

const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case kDtypeFloat32: return "float32";
    case kDtypeBfloat16: return "bfloat16";
    case kDtypeFloat16: return "float16";
    default: return "auto";
  }
}

// Every pixel format of the engine (one list, engine.h): "RGB, RGBA, ...".
std::string format_list() {
  std::string out;
  for (const qwenvl::PixelFormatName& entry : qwenvl::kPixelFormatNames) {
    if (!out.empty()) out += ", ";
    out += entry.name;
  }
  return out;
}

constexpr const char* kCudaMemoryFeature = "memory:CUDAMemory";

// The sink and src caps: every pixel format of the engine, any size and rate; in host memory, and
// first in CUDA memory where the build has GStreamer's CUDA library (offered while the engine runs
// on one CUDA device: gst_qwenvl_transform_caps).
GstCaps* video_caps() {
  const std::string fields = ", format=(string){ " + format_list() +
                             " }, width=(int)[ 1, 2147483647 ], height=(int)[ 1, 2147483647 ], "
                             "framerate=(fraction)[ 0/1, 2147483647/1 ]";
  std::string caps = "video/x-raw" + fields;
  if (built_with_gst_cuda()) caps = std::string("video/x-raw(") + kCudaMemoryFeature + ")" + fields + "; " + caps;
  return gst_caps_from_string(caps.c_str());
}

bool has_cuda_memory_feature(const GstCaps* caps, guint i) {
  const GstCapsFeatures* features = gst_caps_get_features(caps, i);
  return features != nullptr && gst_caps_features_contains(features, kCudaMemoryFeature);
}

// `caps` without its CUDA-memory structures (takes `caps`).
GstCaps* without_cuda_memory(GstCaps* caps) {
  caps = gst_caps_make_writable(caps);
  for (guint i = gst_caps_get_size(caps); i > 0; --i)
    if (has_cuda_memory_feature(caps, i - 1)) gst_caps_remove_structure(caps, i - 1);
  return caps;
}

Settings settings_snapshot(GstQwenVL* self) {
  object_lock(self);
  Settings s = self->state->settings;
  object_unlock(self);
  return s;
}

Runtime runtime_snapshot(GstQwenVL* self) {
  object_lock(self);
  Runtime r = self->state->runtime;
  object_unlock(self);
  return r;
}

GstClockTime estimated_duration(GstQwenVL* self, GstBuffer* buffer) {
  Streaming& st = self->state->streaming;
  if (buffer != nullptr && GST_BUFFER_DURATION_IS_VALID(buffer)) return GST_BUFFER_DURATION(buffer);
  if (st.have_info && st.info.fps_n > 0)
    return gst_util_uint64_scale_int(GST_SECOND, st.info.fps_d, st.info.fps_n);
  if (GST_CLOCK_TIME_IS_VALID(st.last_delta) && st.last_delta > 0) return st.last_delta;
  return GST_SECOND / 10;  // nothing says how long a frame lasts: a tenth of a second
}

}  // namespace

static GstFlowReturn gst_qwenvl_transform_ip(GstBaseTransform* trans, GstBuffer* buffer) {
  GstQwenVL* self = GST_QWENVL(trans);
  Streaming& st = self->state->streaming;
  const Settings s = settings_snapshot(self);
  const Runtime rt = runtime_snapshot(self);
  if (!rt.tracker || !rt.shared.engine) return GST_FLOW_FLUSHING;
  if (!st.have_info) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("qwenvl received a buffer before its caps"), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }

  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  if (GST_CLOCK_TIME_IS_VALID(pts) && GST_CLOCK_TIME_IS_VALID(st.last_pts) && pts > st.last_pts)
    st.last_delta = pts - st.last_pts;
  if (GST_CLOCK_TIME_IS_VALID(pts)) st.last_pts = pts;
  const GstClockTime duration = estimated_duration(self, buffer);
  if (GST_CLOCK_TIME_IS_VALID(pts)) st.last_end = pts + duration;

  const std::vector<qwenvl::RequestId> asked = ask_about_buffer(self, rt, buffer, s);
  if (s.mode == kModeSync)
    for (qwenvl::RequestId id : asked)
      if (id != 0 && !rt.tracker->wait_for(id)) return GST_FLOW_FLUSHING;
  deliver_answers(self, rt, buffer, pts, duration, s);
  draw_overlay(self, buffer, pts, s);
  return GST_FLOW_OK;
}

static gboolean gst_qwenvl_set_caps(GstBaseTransform* trans, GstCaps* incaps, GstCaps* outcaps) {
  (void)outcaps;
  GstQwenVL* self = GST_QWENVL(trans);
  Streaming& st = self->state->streaming;
  GstVideoInfo info;
  if (!gst_video_info_from_caps(&info, incaps)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("qwenvl cannot read the video caps %" GST_PTR_FORMAT, incaps),
                      ("put videoconvert before qwenvl"));
    return FALSE;
  }
  const auto format = qwenvl::pixel_format_from_name(gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)));
  if (!format || GST_VIDEO_INFO_IS_INTERLACED(&info)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("qwenvl takes progressive video/x-raw in %s, not %" GST_PTR_FORMAT, format_list().c_str(), incaps),
                      ("put videoconvert (and deinterlace) before qwenvl"));
    return FALSE;
  }
  const bool same_layout = st.have_info && gst_video_info_is_equal(&st.info, &info);
  st.info = info;
  st.format = *format;
  st.have_info = true;
  st.caps_colorimetry = gst_structure_has_field(gst_caps_get_structure(incaps, 0), "colorimetry");
  st.cuda_memory = has_cuda_memory_feature(incaps, 0);
  st.warned_cuda_copy = false;
  if (!same_layout) {
    drop_partial_clip(self, runtime_snapshot(self), "caps-changed");  // its frames have the old layout
    st.change_reference = {};  // another size or format: the next due frame is asked
  }
  GST_DEBUG_OBJECT(self, "caps %" GST_PTR_FORMAT, incaps);
  return TRUE;
}

static void reset_streaming(GstQwenVL* self) {
  Streaming& st = self->state->streaming;
  st.last_asked_pts = st.last_pts = st.last_delta = st.last_end = st.caption_start = GST_CLOCK_TIME_NONE;
  st.caption.clear();
  st.have_caption = false;
  st.clip.reset();
  st.history.clear();  // flush and a new stream forget the conversation
  st.change_reference = {};  // and the frame last asked: the next due frame is asked
}

static void cancel_pending(GstQwenVL* self, const Runtime& rt) {
  if (!rt.tracker || !rt.shared.engine) return;
  const size_t n = rt.tracker->cancel_all(*rt.shared.engine);
  if (n > 0) GST_DEBUG_OBJECT(self, "cancelled %" G_GSIZE_FORMAT " pending requests", n);
}

static gboolean gst_qwenvl_sink_event(GstBaseTransform* trans, GstEvent* event) {
  GstQwenVL* self = GST_QWENVL(trans);
  const Runtime rt = runtime_snapshot(self);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_STREAM_START: {
      self->state->streaming.history.clear();
      self->state->streaming.change_reference = {};
      drop_partial_clip(self, rt, "new-stream");  // a stream that ended without EOS
      gchar* id = gst_pad_create_stream_id(self->text_src, GST_ELEMENT(self), "text");
      gst_pad_push_event(self->text_src, gst_event_new_stream_start(id));
      g_free(id);
      GstCaps* text_caps = gst_caps_new_simple("text/x-raw", "format", G_TYPE_STRING, "utf8", nullptr);
      gst_pad_push_event(self->text_src, gst_event_new_caps(text_caps));
      gst_caps_unref(text_caps);
      break;
    }
    case GST_EVENT_SEGMENT:
      gst_pad_push_event(self->text_src, gst_event_ref(event));
      break;
    case GST_EVENT_FLUSH_START:
      // Pending answers belong to frames that are gone: cancel them, and wake a sync wait.
      if (rt.tracker) rt.tracker->set_flushing(true);
      cancel_pending(self, rt);
      gst_pad_push_event(self->text_src, gst_event_ref(event));
      break;
    case GST_EVENT_FLUSH_STOP:
      if (rt.tracker) {
        rt.tracker->set_flushing(false);
        rt.tracker->discard_ready();
      }
      reset_streaming(self);
      gst_pad_push_event(self->text_src, gst_event_ref(event));
      break;
    case GST_EVENT_EOS: {
      const Settings s = settings_snapshot(self);
      if (rt.tracker && rt.shared.engine) {
        finish_partial_clip(self, rt, s);
        if (s.mode == kModeAsync && !s.drain_on_eos) cancel_pending(self, rt);
        // Answers after the last buffer (the partial clip's too): messages, signal and text (no
        // buffer left for a meta), before EOS goes on. A flush during the wait discards them.
        if (rt.tracker->wait_all()) {
          Streaming& st = self->state->streaming;
          const GstClockTime at = GST_CLOCK_TIME_IS_VALID(st.last_end) ? st.last_end : 0;
          deliver_answers(self, rt, nullptr, at, estimated_duration(self, nullptr), s);
        }
      }
      gst_pad_push_event(self->text_src, gst_event_ref(event));
      break;
    }
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS(gst_qwenvl_parent_class)->sink_event(trans, event);
}

static gboolean gst_qwenvl_src_event(GstBaseTransform* trans, GstEvent* event) {
  GstQwenVL* self = GST_QWENVL(trans);
  if (GST_EVENT_TYPE(event) == GST_EVENT_SEEK) cancel_pending(self, runtime_snapshot(self));
  return GST_BASE_TRANSFORM_CLASS(gst_qwenvl_parent_class)->src_event(trans, event);
}

// CUDA memory is offered only while a local engine runs on one CUDA device (Runtime::cuda); before
// the engine is loaded (NULL) the template stands, so that gst-inspect and early probes see it.
static GstCaps* gst_qwenvl_transform_caps(GstBaseTransform* trans, GstPadDirection direction, GstCaps* caps,
                                          GstCaps* filter) {
  GstQwenVL* self = GST_QWENVL(trans);
  GstCaps* out = GST_BASE_TRANSFORM_CLASS(gst_qwenvl_parent_class)->transform_caps(trans, direction, caps, filter);
  const Runtime rt = runtime_snapshot(self);
  if (out != nullptr && rt.shared.engine && !rt.cuda) out = without_cuda_memory(out);
  return out;
}

static gboolean gst_qwenvl_query(GstBaseTransform* trans, GstPadDirection direction, GstQuery* query) {
  GstQwenVL* self = GST_QWENVL(trans);
  // Upstream CUDA elements (cudaupload, nvh264dec) ask for a CUDA context as they start: the one of
  // the engine's device, so that their frames are readable by the engine in place.
  if (GST_QUERY_TYPE(query) == GST_QUERY_CONTEXT) {
    const Runtime rt = runtime_snapshot(self);
    if (rt.cuda && rt.cuda->answer_context_query(GST_ELEMENT(self), query)) return TRUE;
  }
  const gboolean ok = GST_BASE_TRANSFORM_CLASS(gst_qwenvl_parent_class)->query(trans, direction, query);
  if (direction == GST_PAD_SINK && GST_QUERY_TYPE(query) == GST_QUERY_ACCEPT_CAPS) {
    gboolean accepted = FALSE;
    gst_query_parse_accept_caps_result(query, &accepted);
    GstCaps* caps = nullptr;
    gst_query_parse_accept_caps(query, &caps);
    // Fixed caps refused while streaming: a caps event is about to fail, and the core would only
    // say "not-negotiated" upstream; say what this element takes. (Probes before PAUSED stay quiet.)
    if (!accepted && caps != nullptr && gst_caps_is_fixed(caps) && GST_STATE(self) >= GST_STATE_PAUSED) {
      gchar* text = gst_caps_to_string(caps);
      if (has_cuda_memory_feature(caps, 0))
        GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                          ("qwenvl takes video/x-raw(memory:CUDAMemory) only with its engine on one CUDA device "
                           "(device=cuda:N) and %s; not %s",
                           built_with_gst_cuda() ? "formats it knows" : "a build with GStreamer's CUDA library", text),
                          ("put cudadownload before qwenvl, or set device=cuda"));
      else
        GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                          ("qwenvl takes video/x-raw in %s (any size and rate), not %s", format_list().c_str(), text),
                          ("put videoconvert before qwenvl"));
      g_free(text);
    }
  }
  if (ok && direction == GST_PAD_SRC && GST_QUERY_TYPE(query) == GST_QUERY_LATENCY &&
      settings_snapshot(self).mode == kModeSync) {
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(query, &live, &min, &max);
    const GstClockTime ours = self->state->reported_latency.load();
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID(max)) max += ours;
    gst_query_set_latency(query, live, min, max);
    GST_DEBUG_OBJECT(self, "latency: adding %" GST_TIME_FORMAT, GST_TIME_ARGS(ours));
  }
  return ok;
}

static gboolean gst_qwenvl_start(GstBaseTransform* trans) {
  GstQwenVL* self = GST_QWENVL(trans);
  reset_streaming(self);
  self->state->streaming.have_info = false;
  const Runtime rt = runtime_snapshot(self);
  if (rt.tracker) {
    rt.tracker->discard_ready();  // answers of the last run (cancelled at PAUSED->READY) stay out
    rt.tracker->set_flushing(false);
  }
  return TRUE;
}

// PAUSED->READY, after the streaming thread stopped: a partial clip is discarded (a deliberate
// reset, as a flush), its frame copies released.
static gboolean gst_qwenvl_stop(GstBaseTransform* trans) {
  GstQwenVL* self = GST_QWENVL(trans);
  self->state->streaming.clip.reset();
  const Runtime rt = runtime_snapshot(self);
  if (rt.tracker) rt.tracker->discard_ready();
  return TRUE;
}

// The local engine: libqwenvl-engine and a model directory. False after posting the error.
static gboolean local_engine_recipe(GstQwenVL* self, const Settings& s, qwenvl::gst::EngineRecipe* recipe,
                                    std::string* library) {
  *library = qwenvl::gst::engine_library_path(s.engine_library);
  std::string error;
  qwenvl::EngineCreateFunction create = qwenvl::gst::load_engine_library(*library, &error);
  if (create == nullptr) {
    GST_ELEMENT_ERROR(self, LIBRARY, INIT,
                      ("qwenvl could not load its engine library %s", library->c_str()),
                      ("%s. Set the engine-library property or QWENVL_ENGINE_LIBRARY to libqwenvl-engine.so, and check "
                       "that the libraries it needs (libtorch) are found",
                       error.c_str()));
    return FALSE;
  }
  if (s.model.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                      ("qwenvl has no model: set model to a Qwen2.5-VL model directory (or remote-url to a server)"),
                      (nullptr));
    return FALSE;
  }
  qwenvl::EngineOptions options;
  options.model_dir = s.model;
  options.device = s.device;
  options.devices = s.devices;
  options.placement = placement_name(s.placement);
  options.dtype = dtype_name(s.dtype);
  options.max_batch = static_cast<int>(s.max_batch);
  recipe->max_batch = options.max_batch;
  if (!s.devices.empty() && s.device_set)
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                        ("qwenvl: devices '%s' wins over device '%s'", s.devices.c_str(), s.device.c_str()),
                        ("device is the one-device alias of devices; set one of them"));
  const std::string where = s.devices.empty() ? s.device : s.devices;
  // Shared by model, devices (else the one device), placement and dtype.
  recipe->identity = "model=" + options.model_dir + " devices=" + where + " placement=" + options.placement +
                     " dtype=" + options.dtype;
  recipe->description = "model '" + options.model_dir + "' on " + where + " (placement " + options.placement + ", " +
                        options.dtype + ")";
  recipe->create = [create, options](std::string* why) { return create(&options, why); };
  return TRUE;
}

// The remote engine: libqwenvl-remote and a server's base URL; shared by URL and model only.
static gboolean remote_engine_recipe(GstQwenVL* self, const Settings& s, qwenvl::gst::EngineRecipe* recipe,
                                     std::string* library) {
  *library = qwenvl::gst::remote_library_path();
  std::string error;
  qwenvl::RemoteEngineCreateFunction create = qwenvl::gst::load_remote_library(*library, &error);
  if (create == nullptr) {
    GST_ELEMENT_ERROR(self, LIBRARY, INIT, ("qwenvl could not load its remote engine library %s", library->c_str()),
                      ("%s. Set QWENVL_REMOTE_LIBRARY to libqwenvl-remote.so", error.c_str()));
    return FALSE;
  }
  qwenvl::RemoteEngineOptions options;
  options.base_url = s.remote_url;
  options.model = s.remote_model;
  options.api_key = s.remote_api_key;
  options.image_format = s.remote_image_format == kRemoteJpeg ? qwenvl::RemoteImageFormat::kJpeg : qwenvl::RemoteImageFormat::kPng;
  options.jpeg_quality = static_cast<int>(s.remote_jpeg_quality);
  options.max_inflight = static_cast<int>(s.remote_max_inflight);
  recipe->identity = "remote-url=" + options.base_url + " remote-model=" + options.model;
  recipe->description = "model '" + (options.model.empty() ? std::string("(the server's first)") : options.model) +
                        "' at " + options.base_url;
  recipe->create = [create, options](std::string* why) { return create(&options, why); };
  return TRUE;
}

// NULL->READY: load the engine library and the model (shared), warmed up before any buffer.
static gboolean open_engine(GstQwenVL* self) {
  const Settings s = settings_snapshot(self);
  const bool remote = !s.remote_url.empty();
  qwenvl::gst::EngineRecipe recipe;
  std::string library;
  if (!(remote ? remote_engine_recipe(self, s, &recipe, &library) : local_engine_recipe(self, s, &recipe, &library)))
    return FALSE;
  SharedEngine shared;
  try {
    shared = qwenvl::gst::acquire_shared_engine(s.engine_id, recipe);
  } catch (const std::exception& e) {
    if (remote)
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                        ("qwenvl could not use the server at %s: %s", s.remote_url.c_str(), e.what()),
                        ("remote engine library %s", library.c_str()));
    else
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                        ("qwenvl could not load the model '%s' on %s: %s", s.model.c_str(), (s.devices.empty() ? s.device : s.devices).c_str(), e.what()),
                        ("engine library %s", library.c_str()));
    return FALSE;
  }
  if (!remote && shared.max_batch != recipe.max_batch)
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                        ("qwenvl: max-batch %d does not apply: the shared engine runs with max-batch %d", recipe.max_batch,
                         shared.max_batch),
                        ("the element that created engine %s set it; give every element sharing it the same max-batch",
                         shared.key.c_str()));
  GST_INFO_OBJECT(self, "engine %" G_GUINT64_FORMAT " (%s) ready, warm-up %" GST_TIME_FORMAT,
                  static_cast<guint64>(shared.instance), shared.key.c_str(), GST_TIME_ARGS(shared.warmup_ns));
  auto tracker = std::make_shared<RequestTracker>(GST_ELEMENT(self));
  std::shared_ptr<CudaFrames> cuda;
  const int cuda_device = remote ? -1 : single_cuda_device(s.device, s.devices);
  if (cuda_device >= 0 && built_with_gst_cuda()) {
    std::string why;
    cuda = CudaFrames::create(cuda_device, &why);
    if (!cuda) GST_WARNING_OBJECT(self, "frames in CUDA memory are not taken: %s", why.c_str());
    else GST_INFO_OBJECT(self, "takes frames in CUDA memory on cuda:%d", cuda_device);
  }
  if (cuda) cuda->post_context(GST_ELEMENT(self));  // for CUDA elements that start before they are linked
  self->state->reported_latency.store(shared.warmup_ns);
  self->state->streaming.warned_latency = false;
  object_lock(self);
  self->state->runtime.shared = std::move(shared);
  self->state->runtime.tracker = std::move(tracker);
  self->state->runtime.cuda = std::move(cuda);
  object_unlock(self);
  return TRUE;
}

static void close_engine(GstQwenVL* self) {
  object_lock(self);
  Runtime rt = std::move(self->state->runtime);
  self->state->runtime = Runtime{};
  object_unlock(self);
  if (rt.tracker) {
    rt.tracker->detach();
    cancel_pending(self, rt);
    // Let the cancelled requests end while the engine still runs, so that none is left for a shared
    // engine to carry or for the engine's shutdown to race with. Bounded: a request queued behind
    // another element's long batch ends later, reaching only the detached tracker.
    if (!rt.tracker->wait_ended(std::chrono::seconds(2)))
      GST_WARNING_OBJECT(self, "requests still pending after cancel; they end on the engine's threads");
  }
  // The last element holding the engine destroys it here.
}

// alert-when is parsed when set; a value that cannot be parsed stops the element from starting.
static bool alert_when_valid(GstQwenVL* self) {
  const Settings s = settings_snapshot(self);
  if (s.alert_error.empty()) return true;
  GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("qwenvl: %s", s.alert_error.c_str()),
                    ("alert-when takes regex:PATTERN or field:PATH OP VALUE (OP: ==, !=, <, <=, >, >=)"));
  return false;
}

// json-schema and choices are checked before the element starts, by the engine library's own check
// (qwenvl/constraint_check.h: the features submit() accepts and xgrammar's grammar): a schema the
// engine refuses, a @FILE that cannot be read, or both set stop the element from starting, instead of
// failing every request. Set while it runs, a bad value fails each request with the reason. With
// remote-url the server checks each request (no engine library is loaded here); a library that does
// not load is left to open_engine, which says so.
static bool constraints_valid(GstQwenVL* self) {
  const Settings s = settings_snapshot(self);
  if (!s.remote_url.empty() || (s.json_schema_property.empty() && s.choices.empty())) return true;
  std::string why = s.json_schema_error;
  if (why.empty()) {
    std::string load_error;
    const qwenvl::ConstraintCheckFunction check =
        qwenvl::gst::load_constraint_check(qwenvl::gst::engine_library_path(s.engine_library), &load_error);
    if (check == nullptr) return true;
    qwenvl::SamplingParams params;
    params.json_schema = s.json_schema;
    params.choices = s.choices;
    if (check(&params, &why)) return true;
  }
  std::string property = s.json_schema_property.empty() ? "choices" : s.choices.empty() ? "json-schema" : "json-schema and choices";
  if (!s.json_schema_property.empty() && s.json_schema_property[0] == '@') property += " '" + s.json_schema_property + "'";
  GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("qwenvl: %s refused: %s", property.c_str(), why.c_str()),
                    ("json-schema takes a schema of the supported features (README: constrained answers) or @FILE; "
                     "choices an array of non-empty texts; set one of them"));
  return false;
}

static GstStateChangeReturn gst_qwenvl_change_state(GstElement* element, GstStateChange transition) {
  GstQwenVL* self = GST_QWENVL(element);
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!alert_when_valid(self) || !constraints_valid(self)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!alert_when_valid(self) || !constraints_valid(self)) return GST_STATE_CHANGE_FAILURE;
#ifndef QWENVL_HAVE_OPENCV
      if (settings_snapshot(self).overlay) {
        GST_ELEMENT_ERROR(self, CORE, NOT_IMPLEMENTED, ("qwenvl was built without OpenCV, so overlay=true cannot draw"),
                          ("install libopencv-core-dev and libopencv-imgproc-dev and rebuild, or link text_src to "
                           "textoverlay"));
        return GST_STATE_CHANGE_FAILURE;
      }
#endif
      self->state->streaming.warned_overlay = false;
      if (!open_engine(self)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY: {
      // Before the pads deactivate: wake a sync wait, cancel what is pending.
      const Runtime rt = runtime_snapshot(self);
      if (rt.tracker) rt.tracker->set_flushing(true);
      cancel_pending(self, rt);
      object_lock(self);
      self->state->asks.clear();  // asked about frames that will not come
      object_unlock(self);
      break;
    }
    default:
      break;
  }
  const GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_qwenvl_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL || (transition == GST_STATE_CHANGE_NULL_TO_READY && ret == GST_STATE_CHANGE_FAILURE))
    close_engine(self);
  return ret;
}

static GstStructure* stats_structure(GstQwenVL* self) {
  const Runtime rt = runtime_snapshot(self);
  qwenvl::gst::TrackerStats t;
  if (rt.tracker) t = rt.tracker->stats();
  qwenvl::EngineStats e;
  if (rt.shared.engine) e = rt.shared.engine->stats();
  return gst_structure_new(
      "qwenvl-stats", "asked", G_TYPE_UINT64, t.asked, "answered", G_TYPE_UINT64, t.answered, "dropped", G_TYPE_UINT64,
      t.dropped, "failed", G_TYPE_UINT64, t.failed, "cancelled", G_TYPE_UINT64, t.cancelled, "latency-mean", G_TYPE_UINT64,
      t.latency_mean_ns, "latency-p99", G_TYPE_UINT64, t.latency_p99_ns, "ttft-mean", G_TYPE_UINT64, t.ttft_mean_ns,
      "ttft-p99", G_TYPE_UINT64, t.ttft_p99_ns, "queue-depth", G_TYPE_UINT, static_cast<guint>(t.in_flight),
      "skipped-unchanged", G_TYPE_UINT64, t.skipped_unchanged, "device-frames", G_TYPE_UINT64,
      self->state->device_frames.load(), "frame-host-time", G_TYPE_UINT64,
      self->state->frames_timed.load() ? self->state->frame_host_ns.load() / self->state->frames_timed.load() : 0,
      "engine-instance", G_TYPE_UINT64, static_cast<guint64>(rt.shared.instance), "engine-submitted", G_TYPE_UINT64,
      static_cast<guint64>(e.submitted), "engine-queued", G_TYPE_UINT, static_cast<guint>(e.queued), "engine-running",
      G_TYPE_UINT, static_cast<guint>(e.running), "engine-max-batch", G_TYPE_UINT, static_cast<guint>(rt.shared.max_batch),
      "engine-kv-blocks", G_TYPE_UINT64, static_cast<guint64>(e.kv_blocks_total), "engine-kv-blocks-used", G_TYPE_UINT64,
      static_cast<guint64>(e.kv_blocks_used), nullptr);
}

// The non-empty strings of a GstValueArray property (stop-strings, choices).
static std::vector<std::string> strings_of_array(const GValue* value) {
  std::vector<std::string> strings;
  for (guint i = 0; i < gst_value_array_get_size(value); ++i) {
    const GValue* v = gst_value_array_get_value(value, i);
    if (G_VALUE_HOLDS_STRING(v) && g_value_get_string(v) && *g_value_get_string(v)) strings.emplace_back(g_value_get_string(v));
  }
  return strings;
}

static void append_strings(GValue* array, const std::vector<std::string>& strings) {
  for (const std::string& text : strings) {
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_STRING);
    g_value_set_string(&v, text.c_str());
    gst_value_array_append_and_take_value(array, &v);
  }
}

// A GstValueArray property of strings (stop-strings, choices).
static GParamSpec* string_array_spec(const char* name, const char* nick, const char* blurb, const char* item_name,
                                     const char* item_nick, const char* item_blurb, GParamFlags flags) {
  return gst_param_spec_array(name, nick, blurb,
                              g_param_spec_string(item_name, item_nick, item_blurb, nullptr,
                                                  static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)),
                              flags);
}

// json-schema's value: the schema itself, or @FILE for a file holding it (read when set). A file that
// cannot be read leaves the value as given and *error set: the element then does not start (see
// constraints_valid); set while it runs, the engine refuses the value as not JSON on every request.
static std::string schema_of_property(GstQwenVL* self, const std::string& value, std::string* error) {
  error->clear();
  if (value.empty() || value[0] != '@') return value;
  gchar* contents = nullptr;
  GError* read_error = nullptr;
  if (!g_file_get_contents(value.c_str() + 1, &contents, nullptr, &read_error)) {
    *error = std::string("cannot read ") + (value.c_str() + 1) + ": " + read_error->message;
    GST_WARNING_OBJECT(self, "json-schema: %s", error->c_str());
    g_error_free(read_error);
    return value;
  }
  std::string schema(contents);
  g_free(contents);
  return schema;
}

static std::string string_or_empty(const GValue* value) {
  const gchar* s = g_value_get_string(value);
  return s ? s : "";
}

// alert-when: parsed here, so that a fault is known before the element starts (see alert_when_valid);
// set on a running element, a bad value is a warning and no answer alerts until it is set again.
static void set_alert_when(GstQwenVL* self, const std::string& text) {
  std::shared_ptr<const AlertCondition> alert;
  std::string error;
  if (!text.empty()) {
    try {
      alert = AlertCondition::parse(text);
    } catch (const AlertConditionError& e) {
      error = e.what();
    }
  }
  object_lock(self);
  Settings& s = self->state->settings;
  s.alert_when = text;
  s.alert = std::move(alert);
  s.alert_error = error;
  const bool running = GST_STATE(self) >= GST_STATE_PAUSED;
  object_unlock(self);
  if (error.empty()) return;
  if (running)
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS, ("qwenvl: %s; no answer alerts until alert-when is set again", error.c_str()),
                        (nullptr));
  else
    GST_WARNING_OBJECT(self, "%s (the element will not start)", error.c_str());
}

static void gst_qwenvl_set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  GstQwenVL* self = GST_QWENVL(object);
  if (id == PROP_ALERT_WHEN) {
    set_alert_when(self, string_or_empty(value));
    return;
  }
  object_lock(self);
  Settings& s = self->state->settings;
  switch (id) {
    case PROP_MODEL: s.model = string_or_empty(value); break;
    case PROP_PROMPT: s.prompt = string_or_empty(value); break;
    case PROP_SYSTEM_PROMPT: s.system_prompt = string_or_empty(value); break;
    case PROP_STREAM_ID: s.stream_id = string_or_empty(value); break;
    case PROP_MAX_NEW_TOKENS: s.max_new_tokens = g_value_get_int(value); break;
    case PROP_IGNORE_EOS: s.ignore_eos = g_value_get_boolean(value); break;
    case PROP_TEMPERATURE: s.temperature = g_value_get_double(value); break;
    case PROP_TOP_K: s.top_k = g_value_get_int(value); break;
    case PROP_TOP_P: s.top_p = g_value_get_double(value); break;
    case PROP_MIN_P: s.min_p = g_value_get_double(value); break;
    case PROP_REPETITION_PENALTY: s.repetition_penalty = g_value_get_double(value); break;
    case PROP_SEED: s.seed = g_value_get_int64(value); break;
    case PROP_STOP_STRINGS: s.stop_strings = strings_of_array(value); break;
    case PROP_CHOICES: s.choices = strings_of_array(value); break;
    case PROP_JSON_SCHEMA:
      s.json_schema_property = string_or_empty(value);
      s.json_schema = schema_of_property(self, s.json_schema_property, &s.json_schema_error);
      break;
    case PROP_INTERVAL: s.interval = g_value_get_uint64(value); break;
    case PROP_MODE: s.mode = static_cast<Mode>(g_value_get_enum(value)); break;
    case PROP_DROP_POLICY: s.drop_policy = static_cast<DropPolicy>(g_value_get_enum(value)); break;
    case PROP_MAX_PENDING: s.max_pending = g_value_get_uint(value); break;
    case PROP_DRAIN_ON_EOS: s.drain_on_eos = g_value_get_boolean(value); break;
    case PROP_CAPTION_DURATION: s.caption_duration = g_value_get_uint64(value); break;
    case PROP_DEVICE: {
      std::string device = string_or_empty(value);
      s.device = device.empty() ? kDefaultDevice : device;
      s.device_set = !device.empty();
      break;
    }
    case PROP_DEVICES: s.devices = string_or_empty(value); break;
    case PROP_PLACEMENT: s.placement = static_cast<Placement>(g_value_get_enum(value)); break;
    case PROP_DTYPE: s.dtype = static_cast<Dtype>(g_value_get_enum(value)); break;
    case PROP_MAX_BATCH: s.max_batch = g_value_get_uint(value); break;
    case PROP_ENGINE_ID: s.engine_id = string_or_empty(value); break;
    case PROP_ENGINE_LIBRARY: s.engine_library = string_or_empty(value); break;
    case PROP_REMOTE_URL: s.remote_url = string_or_empty(value); break;
    case PROP_REMOTE_MODEL: s.remote_model = string_or_empty(value); break;
    case PROP_REMOTE_API_KEY: s.remote_api_key = string_or_empty(value); break;
    case PROP_REMOTE_IMAGE_FORMAT: s.remote_image_format = static_cast<RemoteImageFormatValue>(g_value_get_enum(value)); break;
    case PROP_REMOTE_JPEG_QUALITY: s.remote_jpeg_quality = g_value_get_uint(value); break;
    case PROP_REMOTE_MAX_INFLIGHT: s.remote_max_inflight = g_value_get_uint(value); break;
    case PROP_EMIT_PARTIAL: s.emit_partial = g_value_get_boolean(value); break;
    case PROP_OVERLAY: s.overlay = g_value_get_boolean(value); break;
    case PROP_CLIP_FRAMES: s.clip_frames = g_value_get_uint(value); break;
    case PROP_CLIP_DURATION: s.clip_duration = g_value_get_uint64(value); break;
    case PROP_ROI: s.roi = g_value_get_boolean(value); break;
    case PROP_ROI_LABELS: s.roi_labels = string_or_empty(value); break;
    case PROP_HISTORY_SIZE: s.history_size = g_value_get_uint(value); break;
    case PROP_MIN_PIXELS: s.min_pixels = g_value_get_int64(value); break;
    case PROP_MAX_PIXELS: s.max_pixels = g_value_get_int64(value); break;
    case PROP_CHANGE_THRESHOLD: s.change_threshold = g_value_get_double(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec); break;
  }
  object_unlock(self);
}

static const gchar* nullable(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }

static void gst_qwenvl_get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  GstQwenVL* self = GST_QWENVL(object);
  if (id == PROP_STATS) {
    g_value_take_boxed(value, stats_structure(self));
    return;
  }
  object_lock(self);
  const Settings& s = self->state->settings;
  switch (id) {
    case PROP_MODEL: g_value_set_string(value, nullable(s.model)); break;
    case PROP_PROMPT: g_value_set_string(value, s.prompt.c_str()); break;
    case PROP_SYSTEM_PROMPT: g_value_set_string(value, nullable(s.system_prompt)); break;
    case PROP_STREAM_ID: g_value_set_string(value, nullable(s.stream_id)); break;
    case PROP_MAX_NEW_TOKENS: g_value_set_int(value, s.max_new_tokens); break;
    case PROP_IGNORE_EOS: g_value_set_boolean(value, s.ignore_eos); break;
    case PROP_TEMPERATURE: g_value_set_double(value, s.temperature); break;
    case PROP_TOP_K: g_value_set_int(value, s.top_k); break;
    case PROP_TOP_P: g_value_set_double(value, s.top_p); break;
    case PROP_MIN_P: g_value_set_double(value, s.min_p); break;
    case PROP_REPETITION_PENALTY: g_value_set_double(value, s.repetition_penalty); break;
    case PROP_SEED: g_value_set_int64(value, s.seed); break;
    case PROP_STOP_STRINGS: append_strings(value, s.stop_strings); break;
    case PROP_CHOICES: append_strings(value, s.choices); break;
    case PROP_JSON_SCHEMA: g_value_set_string(value, nullable(s.json_schema_property)); break;
    case PROP_INTERVAL: g_value_set_uint64(value, s.interval); break;
    case PROP_MODE: g_value_set_enum(value, s.mode); break;
    case PROP_DROP_POLICY: g_value_set_enum(value, s.drop_policy); break;
    case PROP_MAX_PENDING: g_value_set_uint(value, s.max_pending); break;
    case PROP_DRAIN_ON_EOS: g_value_set_boolean(value, s.drain_on_eos); break;
    case PROP_CAPTION_DURATION: g_value_set_uint64(value, s.caption_duration); break;
    case PROP_DEVICE: g_value_set_string(value, s.device.c_str()); break;
    case PROP_DEVICES: g_value_set_string(value, s.devices.c_str()); break;
    case PROP_PLACEMENT: g_value_set_enum(value, s.placement); break;
    case PROP_DTYPE: g_value_set_enum(value, s.dtype); break;
    case PROP_MAX_BATCH: g_value_set_uint(value, s.max_batch); break;
    case PROP_ENGINE_ID: g_value_set_string(value, nullable(s.engine_id)); break;
    case PROP_ENGINE_LIBRARY: g_value_set_string(value, nullable(s.engine_library)); break;
    case PROP_REMOTE_URL: g_value_set_string(value, nullable(s.remote_url)); break;
    case PROP_REMOTE_MODEL: g_value_set_string(value, nullable(s.remote_model)); break;
    case PROP_REMOTE_API_KEY: g_value_set_string(value, nullable(s.remote_api_key)); break;
    case PROP_REMOTE_IMAGE_FORMAT: g_value_set_enum(value, s.remote_image_format); break;
    case PROP_REMOTE_JPEG_QUALITY: g_value_set_uint(value, s.remote_jpeg_quality); break;
    case PROP_REMOTE_MAX_INFLIGHT: g_value_set_uint(value, s.remote_max_inflight); break;
    case PROP_EMIT_PARTIAL: g_value_set_boolean(value, s.emit_partial); break;
    case PROP_OVERLAY: g_value_set_boolean(value, s.overlay); break;
    case PROP_CLIP_FRAMES: g_value_set_uint(value, s.clip_frames); break;
    case PROP_CLIP_DURATION: g_value_set_uint64(value, s.clip_duration); break;
    case PROP_ROI: g_value_set_boolean(value, s.roi); break;
    case PROP_ROI_LABELS: g_value_set_string(value, s.roi_labels.c_str()); break;
    case PROP_HISTORY_SIZE: g_value_set_uint(value, s.history_size); break;
    case PROP_MIN_PIXELS: g_value_set_int64(value, s.min_pixels); break;
    case PROP_MAX_PIXELS: g_value_set_int64(value, s.max_pixels); break;
    case PROP_CHANGE_THRESHOLD: g_value_set_double(value, s.change_threshold); break;
    case PROP_ALERT_WHEN: g_value_set_string(value, nullable(s.alert_when)); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec); break;
  }
  object_unlock(self);
}

static void gst_qwenvl_finalize(GObject* object) {
  GstQwenVL* self = GST_QWENVL(object);
  close_engine(self);
  delete self->state;
  self->state = nullptr;
  G_OBJECT_CLASS(gst_qwenvl_parent_class)->finalize(object);
}

static gboolean text_src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_CAPS) {
    GstCaps* caps = gst_pad_get_pad_template_caps(pad);
    GstCaps* filter = nullptr;
    gst_query_parse_caps(query, &filter);
    if (filter != nullptr) {
      GstCaps* both = gst_caps_intersect(caps, filter);
      gst_caps_unref(caps);
      caps = both;
    }
    gst_query_set_caps_result(query, caps);
    gst_caps_unref(caps);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

static gboolean text_src_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  (void)pad;
  (void)parent;
  // The text stream follows the video: seeks and the like are the video's business.
  gst_event_unref(event);
  return TRUE;
}

static GstStaticPadTemplate text_src_template =
    GST_STATIC_PAD_TEMPLATE("text_src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format=(string)utf8"));

static void gst_qwenvl_init(GstQwenVL* self) {
  self->state = new State();
  gst_video_info_init(&self->state->streaming.info);
  self->text_src = gst_pad_new_from_static_template(&text_src_template, "text_src");
  gst_pad_set_query_function(self->text_src, text_src_query);
  gst_pad_set_event_function(self->text_src, text_src_event);
  gst_pad_use_fixed_caps(self->text_src);
  gst_element_add_pad(GST_ELEMENT(self), self->text_src);
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
  gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), FALSE);
}

static void gst_qwenvl_class_init(GstQwenVLClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_qwenvl_debug, "qwenvl", 0, "Qwen2.5-VL answers about video frames");

  gobject_class->set_property = gst_qwenvl_set_property;
  gobject_class->get_property = gst_qwenvl_get_property;
  gobject_class->finalize = gst_qwenvl_finalize;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  const auto live = static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_PLAYING);
  const auto ready = static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_READY);

  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string("model", "Model", "Directory of a Qwen2.5-VL model (config.json, safetensors, tokenizer); loaded at NULL->READY",
                          nullptr, ready));
  g_object_class_install_property(
      gobject_class, PROP_PROMPT,
      g_param_spec_string("prompt", "Prompt", "The question asked about each sampled frame ({stream_id} and {timestamp} are expanded)",
                          kDefaultPrompt, live));
  g_object_class_install_property(
      gobject_class, PROP_SYSTEM_PROMPT,
      g_param_spec_string("system-prompt", "System prompt",
                          "System message ({stream_id} and {timestamp}, the frame's pts as H:MM:SS.mmm, are expanded); "
                          "empty: the chat template's default",
                          nullptr, live));
  g_object_class_install_property(
      gobject_class, PROP_STREAM_ID,
      g_param_spec_string("stream-id", "Stream id", "Names this element's stream in answers and prompts; empty: the element's name",
                          nullptr, live));
  g_object_class_install_property(
      gobject_class, PROP_MAX_NEW_TOKENS,
      g_param_spec_int("max-new-tokens", "Max new tokens", "Most tokens generated per answer; 0: the model's generation_config.json",
                       0, 65536, 0, live));
  g_object_class_install_property(
      gobject_class, PROP_IGNORE_EOS,
      g_param_spec_boolean("ignore-eos", "Ignore EOS",
                           "Generate past the model's end-of-sequence tokens, up to max-new-tokens (benchmarks: a fixed "
                           "number of tokens per answer, as vLLM's and llama-server's ignore_eos; stop strings still "
                           "end an answer). Not with json-schema or choices, whose answers end where the document does",
                           FALSE, live));
  g_object_class_install_property(
      gobject_class, PROP_TEMPERATURE,
      g_param_spec_double("temperature", "Temperature", "Sampling temperature, 0 = greedy; -1: the model's generation_config.json",
                          -1.0, 100.0, -1.0, live));
  g_object_class_install_property(
      gobject_class, PROP_TOP_K,
      g_param_spec_int("top-k", "Top k", "Sample among the k likeliest tokens, 0 = all; -1: the model's default", -1, G_MAXINT, -1,
                       live));
  g_object_class_install_property(
      gobject_class, PROP_TOP_P,
      g_param_spec_double("top-p", "Top p", "Nucleus sampling mass in (0, 1]; -1: the model's default", -1.0, 1.0, -1.0, live));
  g_object_class_install_property(
      gobject_class, PROP_MIN_P,
      g_param_spec_double("min-p", "Min p", "Drop tokens less likely than min-p times the likeliest, 0 = off; -1: the model's default",
                          -1.0, 1.0, -1.0, live));
  g_object_class_install_property(
      gobject_class, PROP_REPETITION_PENALTY,
      g_param_spec_double("repetition-penalty", "Repetition penalty",
                          "Penalty on tokens already seen, 1 = none; -1: the model's default", -1.0, 100.0, -1.0, live));
  g_object_class_install_property(
      gobject_class, PROP_SEED,
      g_param_spec_int64("seed", "Seed", "Seed of the sampler (same seed, same answer); -1: the engine's default", -1, G_MAXINT64, -1,
                         live));
  g_object_class_install_property(
      gobject_class, PROP_STOP_STRINGS,
      string_array_spec("stop-strings", "Stop strings", "Generation stops once the answer ends with one of these (kept out of it)",
                        "stop-string", "Stop string", "One stop string", live));
  g_object_class_install_property(
      gobject_class, PROP_JSON_SCHEMA,
      g_param_spec_string("json-schema", "JSON schema",
                          "Every complete answer is one compact JSON document valid against this schema (or @FILE: "
                          "read from the file when set); empty: free text. A schema the engine does not support, or "
                          "a file that cannot be read, stops the element from starting (an error naming the fault); "
                          "set while it runs, each request fails with the reason",
                          nullptr, live));
  g_object_class_install_property(
      gobject_class, PROP_CHOICES,
      string_array_spec("choices", "Choices", "The answer is exactly one of these texts (an array: choices may hold commas); refused at "
                        "start, with an error, when json-schema is set too",
                        "choice", "Choice", "One choice", live));
  g_object_class_install_property(
      gobject_class, PROP_INTERVAL,
      g_param_spec_uint64("interval", "Interval",
                          "Least time between asked frames, by buffer timestamps (ns); 0: every frame. A buffer "
                          "without a timestamp is always due. GST_CLOCK_TIME_NONE (18446744073709551615, what -1 "
                          "becomes on a gst-launch-1.0 line) is no interval at all: only the first frame of a stream "
                          "is asked, and again after a flush or when timestamps go back",
                          0, G_MAXUINT64, 0, live));
  g_object_class_install_property(
      gobject_class, PROP_MODE,
      g_param_spec_enum("mode", "Mode", "async: the video never waits; sync: every asked frame waits for its answer",
                        GST_TYPE_QWENVL_MODE, kModeAsync, ready));
  g_object_class_install_property(
      gobject_class, PROP_DROP_POLICY,
      g_param_spec_enum("drop-policy", "Drop policy", "In async mode, what a frame due while max-pending requests are in flight does",
                        GST_TYPE_QWENVL_DROP_POLICY, kSkipWhileBusy, live));
  g_object_class_install_property(
      gobject_class, PROP_MAX_PENDING,
      g_param_spec_uint("max-pending", "Max pending", "Requests of this element in flight at once (async mode)", 1, 1024, 1, live));
  g_object_class_install_property(
      gobject_class, PROP_DRAIN_ON_EOS,
      g_param_spec_boolean("drain-on-eos", "Drain on EOS",
                           "At EOS in async mode, wait for the pending answers (true) or cancel them (false); a partial "
                           "clip (clip-frames) is asked and waited for (true) or dropped with a qwenvl-dropped message (false)",
                           TRUE, live));
  g_object_class_install_property(
      gobject_class, PROP_CAPTION_DURATION,
      g_param_spec_uint64("caption-duration", "Caption duration",
                          "How long an answer stays on text_src (ns); 0: until the next answer", 0, G_MAXUINT64, 0, live));
  g_object_class_install_property(
      gobject_class, PROP_DEVICE,
      g_param_spec_string("device", "Device",
                          "Where the model runs: cpu, cuda or cuda:N (one device; devices, when set, wins over it)",
                          kDefaultDevice, ready));
  g_object_class_install_property(
      gobject_class, PROP_DEVICES,
      g_param_spec_string(
          "devices", "Devices",
          "Devices to run on, comma-separated entries DEVICE[@PROFILE][=CAP], e.g. cuda:0=22GiB,cuda:1: DEVICE cpu, "
          "cuda or cuda:N (may repeat), PROFILE h100 (default for cuda), h200 or cpu, CAP the most the entry may use "
          "(B, KiB, MiB, GiB, TiB or KB, MB, GB, TB; decimals allowed). Several entries or a cap are planned before "
          "loading (qwenvl-cli --plan shows the plan); empty: device alone",
          nullptr, ready));
  g_object_class_install_property(
      gobject_class, PROP_PLACEMENT,
      g_param_spec_enum("placement", "Placement",
                        "How the model goes over devices: replicas (a whole model per device, requests shared) or a "
                        "pipeline (layer ranges, one stage per device; not run yet over several devices)",
                        GST_TYPE_QWENVL_PLACEMENT, kPlacementAuto, ready));
  g_object_class_install_property(
      gobject_class, PROP_DTYPE,
      g_param_spec_enum("dtype", "Data type", "Data type of the weights and activations", GST_TYPE_QWENVL_DTYPE, kDtypeAuto, ready));
  g_object_class_install_property(
      gobject_class, PROP_MAX_BATCH,
      g_param_spec_uint("max-batch", "Max batch",
                        "Sequences the engine decodes together at most: for N streams answered at once, at least N (more "
                        "costs KV cache memory, sized for max-batch sequences). Elements sharing an engine share its "
                        "batch: the element that creates the engine sets it, a different value on another element is "
                        "warned about and not applied. Not used with remote-url (see remote-max-inflight)",
                        1, 1024, 16, ready));
  g_object_class_install_property(
      gobject_class, PROP_ENGINE_ID,
      g_param_spec_string("engine-id", "Engine id",
                          "Elements with the same engine-id share one engine; empty: shared by model, devices (or device), "
                          "placement and dtype",
                          nullptr, ready));
  g_object_class_install_property(
      gobject_class, PROP_ENGINE_LIBRARY,
      g_param_spec_string("engine-library", "Engine library",
                          "Path of libqwenvl-engine.so, loaded at NULL->READY; empty: $QWENVL_ENGINE_LIBRARY, else the one "
                          "installed beside this plugin (or the build tree's, when the plugin runs from it)",
                          nullptr, ready));
  g_object_class_install_property(
      gobject_class, PROP_REMOTE_URL,
      g_param_spec_string("remote-url", "Remote URL",
                          "Base URL of an OpenAI-compatible server (vLLM, SGLang, llama-server, qwenvl-server), ending in "
                          "/v1, e.g. http://gpu-pool:8000/v1: each question becomes a streamed POST /chat/completions "
                          "(frames as image_url data URIs, a clip as its frames in order) through libqwenvl-remote "
                          "($QWENVL_REMOTE_LIBRARY), and model, device, dtype and engine-library are not used. A timeout, "
                          "refused connection or 5xx fails that request (qwenvl-failed, with the reason); later requests "
                          "retry the server with a backoff (0.1 s doubling to 5 s). Elements share a remote engine when "
                          "remote-url and remote-model match (the first one's other remote-* settings hold). Empty: the "
                          "local engine",
                          nullptr, ready));
  g_object_class_install_property(
      gobject_class, PROP_REMOTE_MODEL,
      g_param_spec_string("remote-model", "Remote model",
                          "The served model's name sent as `model` (vLLM: --served-model-name, or the model path it was "
                          "started with); empty: the first model of GET {remote-url}/models",
                          nullptr, ready));
  g_object_class_install_property(
      gobject_class, PROP_REMOTE_API_KEY,
      g_param_spec_string("remote-api-key", "Remote API key",
                          "Sent as Authorization: Bearer KEY to remote-url; empty: no header", nullptr, ready));
  g_object_class_install_property(
      gobject_class, PROP_REMOTE_IMAGE_FORMAT,
      g_param_spec_enum("remote-image-format", "Remote image format",
                        "How frames travel to remote-url: png (lossless, the default: answers equal the local engine's) "
                        "or jpeg (remote-jpeg-quality; fewer bytes, other pixels)",
                        GST_TYPE_QWENVL_REMOTE_IMAGE_FORMAT, kRemotePng, ready));
  g_object_class_install_property(
      gobject_class, PROP_REMOTE_JPEG_QUALITY,
      g_param_spec_uint("remote-jpeg-quality", "Remote JPEG quality", "libjpeg quality of frames sent as JPEG (remote-image-format=jpeg)",
                        1, 100, 90, ready));
  g_object_class_install_property(
      gobject_class, PROP_REMOTE_MAX_INFLIGHT,
      g_param_spec_uint("remote-max-inflight", "Remote max in flight",
                        "Most requests on the wire to remote-url at once, each on its own kept-alive connection; more "
                        "wait in the remote engine's queue",
                        1, 1024, 4, ready));
  g_object_class_install_property(
      gobject_class, PROP_EMIT_PARTIAL,
      g_param_spec_boolean("emit-partial", "Emit partial",
                           "Post qwenvl-partial element messages with the new text as tokens arrive", FALSE, live));
  g_object_class_install_property(
      gobject_class, PROP_OVERLAY,
      g_param_spec_boolean("overlay", "Overlay",
                           "Draw the latest answer onto the video (OpenCV): white text wrapped to the width on a dark band "
                           "at the bottom of the frame, for demos without textoverlay; held as long as on text_src "
                           "(caption-duration). Characters outside ASCII are drawn as ASCII look-alikes or '?'"
#ifndef QWENVL_HAVE_OPENCV
                           ". This build has no OpenCV: overlay=true fails at NULL->READY"
#endif
                           ,
                           FALSE, live));
  g_object_class_install_property(
      gobject_class, PROP_CLIP_FRAMES,
      g_param_spec_uint("clip-frames", "Clip frames",
                        "Frames per question, sent as one video clip with their real timestamps (motion questions); "
                        "0 or 1: single frames. A clip starts at a frame due by interval and takes the first frames at or "
                        "after start + i * clip-duration / (clip-frames - 1); answers carry window-start and window-end. "
                        "A clip unfinished at EOS is asked with the frames it has (its answer's clip-frames says how many) "
                        "and answered before EOS goes downstream; with drain-on-eos=false in async mode it is dropped with "
                        "a qwenvl-dropped message instead; flush and PAUSED->READY discard it. Ignored in roi mode",
                        0, 256, 0, live));
  g_object_class_install_property(
      gobject_class, PROP_CLIP_DURATION,
      g_param_spec_uint64("clip-duration", "Clip duration",
                          "Time a clip spans, first to last frame, by buffer timestamps (ns); 0: consecutive frames. "
                          "A clip cut short by EOS spans less (window-end: its last frame)",
                          0, G_MAXUINT64, GST_SECOND, live));
  g_object_class_install_property(
      gobject_class, PROP_ROI,
      g_param_spec_boolean("roi", "Regions of interest",
                           "Ask about each GstVideoRegionOfInterestMeta box of a sampled frame (an upstream detector's), "
                           "cropped out of the frame (clamped to it; NV12/I420 crops start on even coordinates), one "
                           "request per box, instead of the whole frame; answers carry roi-id and roi-type. {label} in "
                           "prompt becomes the box's label. Frames without boxes are not asked; ask still asks whole frames",
                           FALSE, live));
  g_object_class_install_property(
      gobject_class, PROP_ROI_LABELS,
      g_param_spec_string("roi-labels", "ROI labels",
                          "Comma-separated roi types (labels) asked about in roi mode, e.g. \"person,car\"; empty: every box",
                          "", live));
  g_object_class_install_property(
      gobject_class, PROP_HISTORY_SIZE,
      g_param_spec_uint("history-size", "History size",
                        "Earlier (prompt, answer) turns of this stream sent as text context with each question, oldest "
                        "first; cleared on flush and stream-start; roi answers neither use nor join it. 0: none",
                        0, 1024, 0, live));
  g_object_class_install_property(
      gobject_class, PROP_MIN_PIXELS,
      g_param_spec_int64("min-pixels", "Min pixels",
                         "Fewest pixels a frame is resized to before the vision encoder; 0: the model's processor config. "
                         "Not clamped: a value that would make a side of the resized frame exceed 65536 pixels fails "
                         "that frame's request with the reason (a qwenvl-failed message and a warning)",
                         0, G_MAXINT64, 0, live));
  g_object_class_install_property(
      gobject_class, PROP_MAX_PIXELS,
      g_param_spec_int64("max-pixels", "Max pixels",
                         "Most pixels a frame is resized to before the vision encoder (fewer: fewer tokens, faster); 0: "
                         "the model's processor config. Below one 28x28 cell (784) a frame still becomes one cell, as in "
                         "transformers",
                         0, G_MAXINT64, 0, live));
  g_object_class_install_property(
      gobject_class, PROP_CHANGE_THRESHOLD,
      g_param_spec_double(
          "change-threshold", "Change threshold",
          "Ask about a frame due by interval only when it differs by more than this from the frame last asked about: "
          "the mean absolute difference (0-255) of 8-bit luma between 32x32 area-averaged copies of the two frames (the "
          "Y plane of NV12/I420 as it is; R, G, B weighted as BT.601, alpha ignored), computed for due frames only. A "
          "change over a fraction f of the picture, d levels deep, scores about f * d. A skipped frame is counted as "
          "skipped-unchanged in stats and leaves the frame due, so the next frame is compared in turn: the first "
          "frame that differs is asked. Clips are compared by the frame that starts them, roi mode by frames with "
          "boxes (whole frames); questions of the ask signal are never skipped and never become the reference. The "
          "first frame, and the first after a flush, a new stream or a change of size or format, is always asked. "
          "0: off, every due frame is asked",
          0.0, 255.0, 0.0, live));
  g_object_class_install_property(
      gobject_class, PROP_ALERT_WHEN,
      g_param_spec_string(
          "alert-when", "Alert when",
          "Which answers are alerts: each posts a qwenvl-alert element message (the answer's qwenvl-result fields "
          "and alert-when) and carries alert=true in its meta, qwenvl-result message and result signal (false "
          "otherwise). regex:PATTERN: a PCRE2 pattern (UTF-8) found anywhere in the answer's text, ^ and $ to "
          "anchor, (?i) to ignore case; bounded by match, depth and heap limits (an answer that hits one is no "
          "alert). field:PATH OP VALUE: the answer parsed as JSON, PATH a member, dotted for nested objects (a "
          "number indexes an array), OP one of ==, !=, <, <=, >, >=, VALUE a JSON scalar (a number, true, false, "
          "null or a \"quoted string\"); the ordering operators compare numbers only; an answer that is not JSON "
          "or lacks the field is no alert. Examples: regex:(?i)^yes\\b, field:people>=3, field:scene.kind==\"car\" "
          "(in a gst-launch-1.0 line a backslash escapes the next character: alert-when=\"regex:(?i)^yes\\\\b\"). "
          "A value that cannot be parsed stops the element from starting (NULL->READY or READY->PAUSED) with an "
          "error naming the fault; set while running, it posts a warning and no answer alerts. Empty: no alerts",
          nullptr, live));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "qwenvl-stats: asked, answered, dropped, failed, cancelled, latency-mean, latency-p99, ttft-mean, "
                         "ttft-p99 (ns), queue-depth (this element's requests in flight), skipped-unchanged (due frames "
                         "not asked for want of change, see change-threshold; in neither asked nor dropped), "
                         "device-frames (frames handed to the engine in CUDA memory, read there without a copy through "
                         "the host), frame-host-time (ns: the streaming thread's mean time to map a whole frame it "
                         "asks about and hand it to the engine, its copy included), engine-instance, "
                         "engine-submitted, engine-queued, engine-running, engine-max-batch (0 for a remote engine), "
                         "engine-kv-blocks, engine-kv-blocks-used (the shared engine's)",
                         GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  /**
   * GstQwenVL::result:
   * @qwenvl: the element
   * @answer: a qwenvl-result structure, the fields of GstQwenVLMeta
   *
   * Emitted on the streaming thread for each answer, beside its message and meta.
   */
  element_signals[SIGNAL_RESULT] = g_signal_new("result", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, nullptr, nullptr, nullptr,
                                        G_TYPE_NONE, 1, GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * GstQwenVL::ask:
   * @qwenvl: the element
   * @prompt: the question ({stream_id} and {timestamp} are expanded); NULL or empty: the prompt property
   *
   * Action signal: asks @prompt about the next frame that reaches the element (the whole frame, as
   * well as whatever interval sampling asks; never dropped by drop-policy, waited for in sync mode).
   * Returns the request id at once: the "request-id" of the answer's GstQwenVLMeta, qwenvl-result
   * message and result signal. Request ids are the element's own, unique in the process (every
   * answer carries one; they are not the engine's internal ids). Questions still waiting for a frame
   * when the element stops (PAUSED->READY) are dropped.
   *
   * Returns: the request id (never 0)
   */
  element_signals[SIGNAL_ASK] = g_signal_new_class_handler("ask", G_TYPE_FROM_CLASS(klass),
                                                   static_cast<GSignalFlags>(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
                                                   G_CALLBACK(queue_ask), nullptr, nullptr, nullptr, G_TYPE_UINT64, 1,
                                                   G_TYPE_STRING);

  GstCaps* caps = video_caps();
  gst_element_class_add_pad_template(element_class, gst_pad_template_new("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template(element_class, gst_pad_template_new("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref(caps);
  gst_element_class_add_static_pad_template(element_class, &text_src_template);

  gst_element_class_set_static_metadata(
      element_class, "Qwen2.5-VL vision-language model", "Filter/Analyzer/Video",
      "Asks a Qwen2.5-VL model about video frames without holding up the video; answers go downstream as "
      "GstQwenVLMeta, qwenvl-result messages, the result signal and text/x-raw on text_src. The action "
      "signal ask(prompt) asks about the next frame and returns the request-id (guint64, this element's own "
      "ids, unique in the process) that its answer will carry; a request that ends without an answer posts "
      "a qwenvl-failed message (request-id, status, error). Example: "
      "gst-launch-1.0 -m videotestsrc num-buffers=60 ! qwenvl model=/models/Qwen2.5-VL-3B-Instruct "
      "interval=1000000000 ! fakesink",
      "qwenvl developers");

  element_class->change_state = gst_qwenvl_change_state;
  trans_class->transform_ip = gst_qwenvl_transform_ip;
  trans_class->set_caps = gst_qwenvl_set_caps;
  trans_class->sink_event = gst_qwenvl_sink_event;
  trans_class->src_event = gst_qwenvl_src_event;
  trans_class->query = gst_qwenvl_query;
  trans_class->transform_caps = gst_qwenvl_transform_caps;
  trans_class->start = gst_qwenvl_start;
  trans_class->stop = gst_qwenvl_stop;
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;

  gst_type_mark_as_plugin_api(GST_TYPE_QWENVL_MODE, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_QWENVL_DROP_POLICY, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_QWENVL_DTYPE, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_QWENVL_PLACEMENT, static_cast<GstPluginAPIFlags>(0));
}
