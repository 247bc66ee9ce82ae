// The qwenvl element's instance data, shared by the files that make up the element: its GObject
// glue (gstqwenvl.cpp), turning frames into questions (frame_questions.cpp) and delivering answers
// (answer_delivery.cpp). Not installed; nothing outside gst-plugin/ includes it.
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "alert_condition.h"
#include "clip_collector.h"
#include "cuda_frames.h"
#include "engine_registry.h"
#include "frame_change.h"
#include "gstqwenvl.h"
#include "qwenvl/engine.h"
#include "request_tracker.h"
#include "tsan_sync.h"

namespace qwenvl::gst {

enum Mode { kModeAsync, kModeSync };
enum DropPolicy { kSkipWhileBusy, kDropOldest };
enum Dtype { kDtypeAuto, kDtypeFloat32, kDtypeBfloat16, kDtypeFloat16 };
enum Placement { kPlacementAuto, kPlacementPipeline, kPlacementReplicas };  // EngineOptions::placement
enum RemoteImageFormatValue { kRemotePng, kRemoteJpeg };

constexpr const char* kDefaultPrompt = "Describe this image.";
constexpr const char* kDefaultDevice = "cpu";

// Property values; read and written under the object lock.
struct Settings {
  std::string model;
  std::string prompt = kDefaultPrompt;
  std::string system_prompt;
  std::string stream_id;  // empty: the element's name
  int max_new_tokens = 0;
  gboolean ignore_eos = FALSE;
  double temperature = -1, top_p = -1, min_p = -1, repetition_penalty = -1;
  int top_k = -1;
  gint64 seed = -1;
  std::vector<std::string> stop_strings;
  std::string json_schema_property;  // as set: the schema or @FILE
  std::string json_schema;           // the schema itself
  std::string json_schema_error;     // why @FILE cannot be read; empty when it can (or no file)
  std::vector<std::string> choices;
  GstClockTime interval = 0;
  Mode mode = kModeAsync;
  DropPolicy drop_policy = kSkipWhileBusy;
  guint max_pending = 1;
  gboolean drain_on_eos = TRUE;
  GstClockTime caption_duration = 0;
  std::string device = kDefaultDevice;
  bool device_set = false;  // device was given (devices, when also set, wins with a warning)
  std::string devices;      // a device list (EngineOptions::devices); empty: device alone
  Placement placement = kPlacementAuto;
  Dtype dtype = kDtypeAuto;
  guint max_batch = 16;  // EngineOptions::max_batch's default
  std::string engine_id;
  std::string engine_library;
  // remote-url set: the remote engine (libqwenvl-remote) asks that server instead of loading a model.
  std::string remote_url, remote_model, remote_api_key;
  RemoteImageFormatValue remote_image_format = kRemotePng;
  guint remote_jpeg_quality = 90;
  guint remote_max_inflight = 4;
  gboolean emit_partial = FALSE;
  gboolean overlay = FALSE;
  guint clip_frames = 0;  // 0 or 1: single frames
  GstClockTime clip_duration = GST_SECOND;
  gboolean roi = FALSE;
  std::string roi_labels;  // comma-separated filter; empty: every box
  guint history_size = 0;
  gint64 min_pixels = 0, max_pixels = 0;  // 0: the model's processor config
  double change_threshold = 0;             // 0: every due frame is asked
  std::string alert_when;                  // as set; empty: no alerts
  std::shared_ptr<const AlertCondition> alert;  // alert_when parsed; null when empty or bad
  std::string alert_error;                 // why alert_when cannot be parsed; empty when it can
};

// A question of the `ask` signal, waiting for the next frame.
struct PendingAsk {
  qwenvl::RequestId id;
  std::string prompt;
};

// What NULL->READY sets up and READY->NULL releases; pointers copied under the object lock.
struct Runtime {
  SharedEngine shared;
  std::shared_ptr<RequestTracker> tracker;
  // A local engine on one CUDA device, in a build with GStreamer's CUDA library: the context shared
  // with upstream CUDA elements and the frames read in place (null: CUDA memory caps not offered).
  std::shared_ptr<CudaFrames> cuda;
};

// Streaming-thread state.
struct Streaming {
  GstVideoInfo info;
  bool have_info = false;
  bool caps_colorimetry = false;  // the caps named one (else the engine applies GStreamer's default)
  bool cuda_memory = false;       // the caps carry memory:CUDAMemory
  bool warned_cuda_copy = false;  // said once why CUDA frames go through host memory
  qwenvl::PixelFormat format = qwenvl::PixelFormat::kRGB;
  GstClockTime last_asked_pts = GST_CLOCK_TIME_NONE;
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
  GstClockTime last_delta = GST_CLOCK_TIME_NONE;
  GstClockTime last_end = GST_CLOCK_TIME_NONE;  // end of the last outgoing video buffer
  std::string caption;
  GstClockTime caption_start = GST_CLOCK_TIME_NONE;
  bool have_caption = false;
  bool warned_latency = false;
  bool warned_overlay = false;
  ClipCollector clip;                // clip-frames >= 2: the clip being collected
  std::deque<qwenvl::Turn> history;  // history-size: this stream's earlier (prompt, answer) turns
  LumaThumbnail change_reference;    // change-threshold: the frame the sampling policy last asked about
};

struct State {
  Settings settings;
  Runtime runtime;
  Streaming streaming;
  std::deque<PendingAsk> asks;  // under the object lock: the `ask` signal comes from any thread
  std::atomic<guint64> reported_latency{0};  // added latency reported in sync mode
  std::atomic<guint64> device_frames{0};     // frames handed to the engine in CUDA memory (stats)
  // Whole frames asked, and the streaming thread's time to map each and hand it to the engine
  // (submit() included, which copies a host frame): stats' frame-host-time.
  std::atomic<guint64> frames_timed{0}, frame_host_ns{0};
};

// The element's signals; class_init sets their ids, answer delivery emits `result`.
enum { SIGNAL_RESULT, SIGNAL_ASK, N_SIGNALS };
extern guint element_signals[N_SIGNALS];

}  // namespace qwenvl::gst

struct _GstQwenVL {
  GstBaseTransform parent;
  GstPad* text_src;
  qwenvl::gst::State* state;
};
