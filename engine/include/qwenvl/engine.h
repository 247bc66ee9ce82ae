// qwenvl's public API: an Engine that answers questions about images and video clips with a
// Qwen2.5-VL model. No GStreamer, no kernel headers: the element, the CLI and the benchmark are
// clients of this header alone.
//
//   auto engine = qwenvl::Engine::create({.model_dir = "/models/Qwen2.5-VL-7B-Instruct"});
//   qwenvl::Request request;
//   request.images.push_back(qwenvl::FrameView::packed(qwenvl::PixelFormat::kRGB, w, h, rgb));
//   request.prompt = "Describe this image.";
//   qwenvl::Result result = engine->submit(std::move(request)).result.get();
//
// Every request ends exactly once — answered, cancelled, expired or failed with a reason — through
// its callback (on the engine's thread) and its future. submit() and cancel() are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qwenvl/error.h"
#include "qwenvl/pixel_format.h"

namespace qwenvl {

// Where a frame's planes lie: host memory, or a CUDA device's memory (a GPU video decoder's or
// GStreamer's CUDAMemory output), read there without a trip through the host.
enum class FrameMemory { kHost, kCuda };

// A frame in the caller's memory. Host frames: submit() copies what it needs before returning.
// CUDA frames (memory = kCuda): `planes` are device pointers on CUDA device `cuda_device`, allocated
// in that device's primary context (the one the runtime API and libtorch use; another context's
// memory is refused with the reason, never read), with every row of every plane inside one
// allocation. The engine converts and resizes them on that device as it does host frames (the same
// pixel values) and holds `keep_alive` until it has read them (while the request is prepared, long
// before the answer), then drops its references: make it with release_callback() to learn when.
// The caller must have finished writing the planes (its stream synchronised) before submit(), and
// must not write them until released. An engine on the CPU or another device fails such a request
// at once, saying why.
struct FrameView {
  PixelFormat format = PixelFormat::kRGB;
  int width = 0;
  int height = 0;
  const uint8_t* planes[3] = {nullptr, nullptr, nullptr};  // RGB family: 1; NV12: 2 (Y, UV); I420: 3
  int strides[3] = {0, 0, 0};                               // bytes per row of each plane
  double timestamp_s = 0.0;  // presentation time; a clip's frame rate comes from these
  YuvMatrix yuv_matrix = YuvMatrix::kAuto;
  bool yuv_full_range = false;  // limited (16-235) unless the caps say full range
  FrameMemory memory = FrameMemory::kHost;
  int cuda_device = -1;                   // kCuda: the device index of the planes ("cuda:N")
  std::shared_ptr<const void> keep_alive;  // kCuda: held by the engine until it has read the planes

  // One tightly packed plane (row stride = width * bytes per pixel) or packed planar YUV.
  static FrameView packed(PixelFormat format, int width, int height, const uint8_t* data, double timestamp_s = 0.0);
};

// A keep_alive that calls `release` once, when the last copy of it is dropped (the engine's, once it
// has read the frame, or the caller's, whichever is last). Inline: clients that load the engine at
// run time need no symbol of it.
inline std::shared_ptr<const void> release_callback(std::function<void()> release) {
  struct Releaser {
    std::function<void()> release;
    ~Releaser() {
      if (release) release();
    }
  };
  return std::shared_ptr<const void>(new Releaser{std::move(release)});
}

// Temperatures below this are greedy: sampling at them is the argmax to float precision, and
// dividing the logits by them heads for overflow (1e-45 made them inf and the softmax NaN). vLLM
// draws the line at 1e-5; here it is lower, so that Qwen2.5-VL's own generation_config.json
// (temperature 1e-6) samples as transformers does.
constexpr double kGreedyTemperature = 1e-8;

struct SamplingParams {
  // Unset fields come from the model's generation_config.json, then transformers' defaults.
  std::optional<int> max_new_tokens;
  std::optional<double> temperature;  // 0, or anything below kGreedyTemperature, means greedy
  std::optional<int> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop_strings;  // generation stops once the text ends with one (kept out of the answer)
  bool ignore_eos = false;  // generate past EOS up to max_new_tokens (benchmarks: a fixed number of tokens)
  // Constrained decoding (one of the two, or neither). json_schema: every complete answer is one
  // compact JSON document valid against it (properties in the schema's order; README lists the
  // supported keywords; others are refused at submit). choices: the answer is exactly one of them.
  std::string json_schema;
  std::vector<std::string> choices;
};

using RequestId = uint64_t;

enum class Status { kAnswered, kCancelled, kExpired, kFailed };
constexpr const char* status_name(Status status) {
  switch (status) {
    case Status::kAnswered: return "answered";
    case Status::kCancelled: return "cancelled";
    case Status::kExpired: return "expired";
    case Status::kFailed: return "failed";
  }
  return "unknown";
}

struct Result {
  RequestId id = 0;
  Status status = Status::kFailed;
  std::string text;                 // the answer, decoded as transformers' decode(skip_special_tokens=True)
  std::vector<int32_t> token_ids;   // generated ids (the stop token included when generation hit EOS)
  std::string finish_reason;        // "eos", "length", "stop_string"; or why it was not answered
  std::string stop_string;          // finish_reason "stop_string": the stop string that ended it (left out of text)
  std::string error;                // for kFailed / kExpired / kCancelled: the reason, for a person
  bool incomplete = false;          // constrained (json_schema / choices) but cut before the document ended
  std::string stream_id;
  int prompt_tokens = 0;
  int generated_tokens = 0;  // tokens generated: token_ids' count here; a remote server's usage where it sends no ids
  double ttft_ms = 0;   // submit to first generated token
  double total_ms = 0;  // submit to completion
};

// One earlier exchange of a conversation, as text: rendered through the chat template as a user
// message and the assistant's answer before the current question (the media of that turn are not
// sent again).
struct Turn {
  std::string user;
  std::string assistant;
};

struct Request {
  std::vector<FrameView> images;  // zero or more images, in prompt order
  std::vector<FrameView> clip;    // or one video clip: frames in order, with real timestamps
  std::string prompt;
  std::string system_prompt;      // empty: the chat template's default
  std::vector<Turn> history;      // earlier turns, oldest first, between the system message and the question
  SamplingParams sampling;
  std::string stream_id;
  std::optional<int64_t> min_pixels, max_pixels;  // per request; default from the model's processor config
  std::optional<std::chrono::steady_clock::time_point> deadline;  // unanswered by then: kExpired
  std::function<void(const Result&)> on_complete;                 // on the engine's thread
  std::function<void(RequestId, std::string_view)> on_partial;   // new text as tokens arrive (whole UTF-8)
};

struct Submission {
  RequestId id = 0;
  std::future<Result> result;
};

struct EngineOptions {
  std::string model_dir;
  std::string device = "cpu";    // "cpu" or "cuda" / "cuda:N"; a one-device alias of `devices`
  // A device list as qwenvl/placement.h reads it ("cuda:0=22GiB,cuda:1"); wins over `device` when
  // set. Several entries, or a cap, are planned first (qwenvl::plan with this batch, context and
  // dtype; nothing fits: create() throws the planner's reason): replicas run a whole engine per entry
  // with the plan's KV cache each and share the requests (each to the replica with the fewest in
  // flight); a pipeline runs the plan's stages, each on its device with its own thread, KV cache
  // and (on a GPU) memory pool.
  std::string devices;
  std::string placement = "auto";  // "auto", "pipeline" or "replicas" (qwenvl/placement.h)
  std::string dtype = "auto";    // "auto" (bf16 on CUDA, fp32 on CPU), "float32", "bfloat16", "float16"
  // Prompt + generated tokens of one request; at most the model's max_position_embeddings (a larger
  // value is clamped to it: options() reports the value in use).
  int64_t max_context = 8192;
  int max_batch = 16;            // sequences decoded together
  // KV memory budget (of each replica); 0: enough for max_batch x max_context. One device: more
  // than the device has available (the host's MemAvailable, or the card's free memory) is refused
  // by create() with the figures, before anything is allocated.
  int64_t kv_cache_bytes = 0;
  int64_t kv_block_size = 64;    // tokens per KV block
  int default_max_new_tokens = 128;  // when neither the request nor generation_config.json sets one
  bool cuda_graphs = true;       // CUDA: decode steps replayed as graphs, recorded when the engine starts
  bool time_phases = false;      // measure vision / prefill / decode time (EngineStats); synchronises
                                 // the device after each phase, so for benchmarks, not for serving
  // Queue each decode step before the host has read the tokens it appends (one step of lookahead:
  // the device computes while the host checks stops and streams text; a sequence that stops costs
  // one dropped row). Same answers. Unset: on for CUDA (7B on an H100, 14:39 UTC 2026-11-25: GPU
  // idle in a batch-1 decode step 6.7% without, 4.6% with), off on the CPU, where the host computes
  // the step itself and would only pay for the dropped rows.
  std::optional<bool> overlap_decode;
  // Prompts admitted while others decode ride in the decode steps: their media go through the vision
  // tower when they are admitted, then each step also prefills waiting prompts of up to this many
  // tokens in all (at least one prompt, whole), so the decode rows share the prompts' weight reads
  // instead of reading every weight in a step of their own. 0: each admission prefills on its own
  // between steps. Same answers. Unset: 0. Measured on an H100 (random 7B, 2026-12-08, 2048 with
  // encode_group 8): +4.9% frames/s at 64 in flight, -2.6% at 128, even at 3B with 64, so it is
  // not the default; turn it on where the batch seldom fills. One device only (a pipeline prefills
  // on its own).
  std::optional<int64_t> prefill_tokens_per_step;
  // With prefill_tokens_per_step: the requests admitted while others decode go through the vision
  // tower together once this many wait (it runs better on more frames at once: on an H100 about
  // 4.7 ms a 448x448 frame two at a time, 3.8 at eight or more), or sooner: when the batch has room
  // for this many more (nothing queues for a place), after 4 decode steps of waiting, or when
  // nothing else decodes. At most max_batch. 1: each admission is encoded at once. Same answers.
  // Unset: 8.
  std::optional<int> encode_group;
};

// One entry of the device list as the engine runs it (EngineStats::devices).
struct DeviceStats {
  std::string device;  // "cpu", "cuda:0"
  int replica = -1;    // placement replicas (and a capped single device): the replica on this entry
  int stage = -1;      // a pipeline: the position of this entry's layers (qwenvl::DevicePlan::stage)
  // The plan's total bytes for this entry (qwenvl::plan: weights, KV, activations, workspace and
  // margin); 0 when the engine was not planned (one device without a cap).
  int64_t predicted_peak_bytes = 0;
  // Replicas and one device: the device's peak allocated bytes since this entry's engine was
  // created, as peak_device_memory_bytes counts them; 0 on the CPU. The counter is the card's:
  // entries sharing a card each report the card's peak, all of them together.
  // A pipeline: this entry's own. On a GPU the most bytes its stage's memory pool has reserved (every
  // allocation of its worker thread goes there: its weights, KV cache, activations and workspaces;
  // its decode graphs' pools beside it, where it records them); on the CPU the bytes its stage holds,
  // the weights of its part and its KV cache (no activations). 0 for an entry holding nothing.
  int64_t measured_peak_bytes = 0;
  // A pipeline on a GPU: this entry's share of the card's memory outside the caching allocator (the
  // CUDA context and kernel images, which the plan keeps aside from every budget), measured when the
  // stats are read: the card's used bytes less the allocator's reserved, over the stages on it.
  int64_t context_bytes = 0;
  uint64_t requests = 0;  // replicas: requests handed to this entry's replica
};

// Where the inference thread's decode steps spent its time since the engine was created, in ms, by
// part (always kept: clock reads only, nothing synchronises the device). On a GPU the device runs a
// step's forward while the host does the rest, so `wait` is the device time the host could not
// cover; host parts that add up to more than a forward leave the device idle between steps. A step
// is accounted whole when it ends: the one that ends a request, just after the request's callbacks
// have run.
struct DecodeHostTimes {
  double mask_fill_ms = 0;       // constrained rows' token masks filled (json_schema / choices)
  double launch_ms = 0;          // the masks' apply, the sampling and the next forward queued
  double wait_ms = 0;            // waiting for the picked tokens to reach the host
  double grammar_accept_ms = 0;  // constrained rows' grammars taking their tokens
  double tokens_ms = 0;          // the rest: detokenising, stop checks, streaming, ending requests
  uint64_t steps = 0;            // decode steps timed
  // Steps with no prefill queued since the step before (one lane: a batch that only decodes), and
  // their wall time: the decode step's own time, where the parts above also carry the device time
  // of prefills queued between steps (in `wait`).
  uint64_t steady_steps = 0;
  double steady_ms = 0;

  DecodeHostTimes& operator+=(const DecodeHostTimes& o) {
    mask_fill_ms += o.mask_fill_ms;
    launch_ms += o.launch_ms;
    wait_ms += o.wait_ms;
    grammar_accept_ms += o.grammar_accept_ms;
    tokens_ms += o.tokens_ms;
    steps += o.steps;
    steady_steps += o.steady_steps;
    steady_ms += o.steady_ms;
    return *this;
  }
  // What was timed between two readings of the same engine (`this` the later).
  DecodeHostTimes operator-(const DecodeHostTimes& earlier) const {
    DecodeHostTimes d;
    d.mask_fill_ms = mask_fill_ms - earlier.mask_fill_ms;
    d.launch_ms = launch_ms - earlier.launch_ms;
    d.wait_ms = wait_ms - earlier.wait_ms;
    d.grammar_accept_ms = grammar_accept_ms - earlier.grammar_accept_ms;
    d.tokens_ms = tokens_ms - earlier.tokens_ms;
    d.steps = steps - earlier.steps;
    d.steady_steps = steady_steps - earlier.steady_steps;
    d.steady_ms = steady_ms - earlier.steady_ms;
    return d;
  }
};

struct EngineStats {
  uint64_t submitted = 0, answered = 0, cancelled = 0, expired = 0, failed = 0;
  uint64_t vision_forwards = 0, prefill_forwards = 0, decode_forwards = 0;
  // Sequences summed over the decode steps (a step's mean batch: decode_rows / decode_forwards); with
  // overlap_decode a sequence's last, dropped row counts too: the device ran it.
  uint64_t decode_rows = 0;
  // Decode steps that also prefilled prompts admitted meanwhile (EngineOptions::prefill_tokens_per_step);
  // each counts in prefill_forwards and decode_forwards too.
  uint64_t mixed_forwards = 0;
  size_t queued = 0, running = 0;
  // Prefills of several requests that ran out of device memory and were retried in halves (one
  // request that still runs out alone fails with the reason and counts in `failed`).
  uint64_t split_prefills = 0;
  // The paged KV cache, in blocks of EngineOptions::kv_block_size tokens: all of them, and those held
  // by running sequences (each holds its whole answer's blocks from admission to its end).
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  // Most device memory held by tensors at once since the engine was created (the caching allocator's
  // peak allocated bytes, as torch.cuda.max_memory_allocated() counts it); 0 on the CPU.
  // Over several devices: the sum over distinct devices of each one's peak (entries sharing a card
  // count it once); each entry's own is in `devices`.
  int64_t peak_device_memory_bytes = 0;
  // One per entry of the device list, in its order (one device: that device): predicted and measured
  // peaks side by side. With replicas the other counters here are the replicas' summed.
  std::vector<DeviceStats> devices;
  bool decode_graphs = false;  // decode steps replay device graphs (EngineOptions::cuda_graphs, where the model allows)
  // Why the engine serves no more: a device fault that leaves a device unusable (a CUDA error that
  // poisons its context, such as an illegal address) failed every request it held, and every later
  // one fails at once with this reason; create a new engine. Empty while it serves. Replicas: set
  // when every replica has stopped (until then requests go to those that serve).
  std::string fault;
  // With EngineOptions::time_phases: milliseconds spent in the vision tower, the language model's
  // prefill forwards and the decode steps since the engine was created (0 otherwise).
  double vision_ms = 0, prefill_ms = 0, decode_ms = 0;
  DecodeHostTimes decode_host;  // replicas: summed over them
};

class Engine {
 public:
  // Loads the model directory; throws qwenvl::Error saying what is wrong with it.
  static std::unique_ptr<Engine> create(const EngineOptions& options);
  virtual ~Engine() = default;  // cancels what is still pending, then stops

  // Never blocks on inference. A request that can never fit the limits fails at once, saying which.
  virtual Submission submit(Request request) = 0;
  // True when the request was still pending or running (it then ends as kCancelled).
  virtual bool cancel(RequestId id) = 0;
  // Cancels the request only while it waits for admission (submitted or queued, never one that
  // runs); true when it did (it then ends as kCancelled). Runs no callback itself, so it may be
  // called under the caller's own lock.
  virtual bool cancel_queued(RequestId id) = 0;
  virtual EngineStats stats() const = 0;
  virtual const EngineOptions& options() const = 0;
};

// Engine::create for clients that load the library at run time (dlopen + dlsym of
// kEngineCreateSymbol), such as the GStreamer element: they then use only Engine's virtual methods
// and this header's inline parts. Returns nullptr and sets *error (when given) on failure.
using EngineCreateFunction = Engine* (*)(const EngineOptions* options, std::string* error);
inline constexpr const char kEngineCreateSymbol[] = "qwenvl_engine_create";

}  // namespace qwenvl

extern "C" __attribute__((visibility("default"))) qwenvl::Engine* qwenvl_engine_create(const qwenvl::EngineOptions* options,
                                                                                      std::string* error);
