// The Engine of qwenvl/engine.h. Three stages, each on its own thread so that none waits for
// another's work: submit() copies the frames and queues the request (the caller's thread);
// the preparation thread renders, preprocesses and tokenizes, fails at once what can never fit
// and hands the rest to the scheduler; the inference thread runs the scheduler's batch loop
// (runtime/scheduler.h: continuous batching) whenever requests are ready. The engine keeps the
// requests' lifecycle: the table of live requests, the counters and ending each request once.
//
// Locks: the engine's mutex_ (submitted_, live_, stats_, next_id_) and the scheduler's own (its
// ready queue, running set and KV blocks). Order: mutex_ first (stats() and the preparation
// thread's close() call the scheduler under it); the scheduler never calls complete() or
// end_if_stopped() holding its lock, and complete() is never called with mutex_ held.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "kernels/device/memory.h"
#include "kernels/device/side_stream.h"
#include "kernels/dispatch_counts.h"
#include "kernels/error.h"
#include "model/config.h"
#include "model/weights.h"
#include "nn/kv_cache.h"
#include "nn/qwen2_5_vl.h"
#include "qwenvl/engine.h"
#include "qwenvl/placement.h"
#include "runtime/placement/byte_size.h"
#include "runtime/placement/device_budget.h"
#include "runtime/placement/engine_plan.h"
#include "runtime/replicas/replicated_engine.h"
#include "runtime/request_lifecycle.h"
#include "runtime/request_preparation.h"
#include "runtime/scheduler.h"
#include "runtime/sequence.h"
#include "runtime/single_device_executor.h"
#include "runtime/stages/engine_with_tuning.h"
#include "runtime/stages/pipeline_layout.h"
#include "runtime/stages/staged_executor.h"
#include "structured/token_constraint.h"

namespace qwenvl {

namespace runtime {
namespace {

at::ScalarType resolve_dtype(const std::string& dtype, const at::Device& device) {
  if (dtype == "auto") return device.is_cuda() ? at::kBFloat16 : at::kFloat;
  if (dtype == "float32" || dtype == "fp32") return at::kFloat;
  if (dtype == "bfloat16" || dtype == "bf16") return at::kBFloat16;
  if (dtype == "float16" || dtype == "fp16") return at::kHalf;
  throw Error("unknown dtype '" + dtype + "' (use auto, float32, bfloat16 or float16)");
}

at::Device resolve_device(const std::string& device) {
  if (device == "cpu") return at::kCPU;
  if (device.rfind("cuda", 0) == 0) {
    at::Device parsed = at::kCPU;
    try {
      parsed = at::Device(device);
    } catch (const std::exception&) {
      throw Error("unknown device '" + device + "' (use cpu or cuda[:N])");
    }
    if (!kernels::built_with_cuda())
      throw Error("device '" + device + "': this build of qwenvl has no CUDA kernels (configure with -Dcuda=enabled "
                  "where nvcc is installed), use cpu");
    const int64_t visible = at::hasCUDA() ? static_cast<int64_t>(at::getNumGPUs()) : 0;
    if (visible == 0)
      throw Error("device '" + device + "': no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES; "
                  "libtorch_cuda must be loaded)");
    const int64_t index = parsed.has_index() ? parsed.index() : 0;
    if (index >= visible)
      throw Error("device '" + device + "': only " + std::to_string(visible) + " CUDA device(s) are visible");
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error("unknown device '" + device + "' (use cpu or cuda[:N])");
}

// Starts the device's peak-memory counter over before the weights arrive, so that
// EngineStats::peak_device_memory_bytes counts this engine (the counter is per process and device).
at::Device with_peak_reset(at::Device device) {
  if (device.is_cuda()) kernels::reset_peak_device_memory(device.index());
  return device;
}

// The device a pipeline's requests are prepared on: where its vision tower runs.
std::string vision_device(const std::optional<Plan>& plan, const std::string& device) {
  if (plan)
    for (const DevicePlan& d : plan->devices)
      if (d.vision_tower) return d.device;
  return device;
}

class EngineImpl final : public Engine, private RequestLifecycle {
 public:
  // plan: the pipeline to run, or none for one device (options.device).
  EngineImpl(const EngineOptions& options, std::optional<Plan> plan, const stages::StageTuning& tuning)
      : plan_(std::move(plan)),
        device_(with_peak_reset(resolve_device(vision_device(plan_, options.device)))),
        dtype_(resolve_dtype(plan_ ? plan_->dtype : options.dtype, device_)),
        assets_(load_assets(options.model_dir)),
        options_(checked_options(options, assets_.files.model)),
        weights_(model::Weights::load(options.model_dir, assets_.files.model, weight_options())),
        executor_(make_executor(tuning)),
        scheduler_(*executor_, *this, scheduler_options()),
        constraints_(assets_.tokenizer, assets_.files.model.text.vocab_size) {
#ifdef __GLIBC__
    // Parsing tokenizer.json and the configs leaves tens of MB of freed heap behind; hand it back
    // so that a loaded engine costs its weights (mapped), not the parser's high-water mark.
    malloc_trim(0);
#endif
    // Recorded before any request runs (and before the worker threads start), so the first answer
    // pays no recording.
    if (single_ != nullptr) {
      single_->time_phases(options.time_phases);
      if (device_.is_cuda() && options.cuda_graphs)
        decode_graphs_ = single_->enable_decode_graphs(options_.max_batch, options_.max_context);
    }
    prepare_thread_ = std::thread([this] { prepare_loop(); });
    infer_thread_ = std::thread([this] { inference_loop(); });
  }

  ~EngineImpl() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      for (auto& [id, s] : live_) s->cancel_requested = true;
    }
    wake_.notify_all();
    prepare_thread_.join();
    infer_thread_.join();
  }

  Submission submit(Request request) override {
    auto s = std::make_shared<Sequence>();
    s->submitted = Clock::now();
    Submission out;
    out.result = s->promise.get_future();
    s->request = std::move(request);
    std::string error;
    try {
      structured::check_constraint_request(s->request.sampling);  // an unsupported schema is refused here
      s->media = copy_media(s->request, device_);  // the caller's frames may go once submit() returns
    } catch (const Error& e) {
      error = e.what();
    }
    release_request_frames(s->request);  // a CUDA frame is held by s->media alone, until prepared
    {
      std::lock_guard<std::mutex> lock(mutex_);
      s->id = out.id = ++next_id_;
      ++stats_.submitted;
      if (error.empty() && !stopping_ && lost_.empty()) {
        live_[s->id] = s;
        submitted_.push_back(s);
        wake_.notify_all();
        return out;
      }
      if (error.empty()) error = lost_;  // empty while shutting down: cancelled below
      live_[s->id] = s;
    }
    if (!error.empty()) complete(*s, Status::kFailed, "failed", error);
    else complete(*s, Status::kCancelled, "cancelled", "the engine is shutting down");
    return out;
  }

  bool cancel(RequestId id) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(id);
    if (it == live_.end()) return false;
    it->second->cancel_requested = true;
    release_frames_if_unprepared(*it->second);
    wake_.notify_all();
    return true;
  }

  bool cancel_queued(RequestId id) override {
    std::lock_guard<std::mutex> lock(mutex_);  // mutex_ before the scheduler's, as everywhere
    auto it = live_.find(id);
    if (it == live_.end() || !scheduler_.cancel_if_not_admitted(*it->second)) return false;
    release_frames_if_unprepared(*it->second);
    wake_.notify_all();
    return true;
  }

  EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    EngineStats s = stats_;
    const Scheduler::Counts counts = scheduler_.counts();
    s.queued = submitted_.size() + counts.queued;
    s.running = counts.running;
    s.kv_blocks_total = executor_->total_blocks();
    s.kv_blocks_used = counts.kv_blocks_used;
    s.split_prefills = counts.split_prefills;
    s.decode_host = counts.decode_host;
    const ForwardTally forwards = executor_->forwards();
    s.vision_forwards = static_cast<uint64_t>(forwards.vision);
    s.prefill_forwards = static_cast<uint64_t>(forwards.prefill);
    s.decode_forwards = static_cast<uint64_t>(forwards.decode);
    s.decode_rows = static_cast<uint64_t>(forwards.decode_rows);
    s.mixed_forwards = static_cast<uint64_t>(forwards.mixed);
    if (device_.is_cuda()) s.peak_device_memory_bytes = kernels::peak_device_memory_bytes(device_.index());
    if (plan_) {
      for (const DevicePlan& d : plan_->devices) {
        DeviceStats entry;
        entry.device = d.device;
        entry.stage = d.stage;
        entry.predicted_peak_bytes = d.memory.total();
        s.devices.push_back(entry);
      }
      for (const StageMemory& m : executor_->stage_memory()) {
        s.devices[m.entry].measured_peak_bytes = m.measured_peak_bytes;
        s.devices[m.entry].context_bytes = m.context_bytes;
      }
    } else {
      s.devices.resize(1);
      s.devices[0].device = options_.device;
      s.devices[0].measured_peak_bytes = s.peak_device_memory_bytes;
    }
    s.decode_graphs = decode_graphs_;
    s.fault = lost_;
    const PhaseTimes phases = executor_->phase_times();
    s.vision_ms = phases.vision_ms;
    s.prefill_ms = phases.prefill_ms;
    s.decode_ms = phases.decode_ms;
    return s;
  }

  const EngineOptions& options() const override { return options_; }

 private:
  // The options' sizes, checked before the weights load or anything is sized from them. max_context is at most the
  // model's max_position_embeddings: the model has no positions past it, so a larger value
  // (--max-context 100000000, say) is clamped to it rather than sizing a KV cache for it.
  static EngineOptions checked_options(EngineOptions o, const model::ModelConfig& model) {
    if (o.max_batch <= 0) throw Error("max_batch must be > 0");
    if (o.max_context <= 1) throw Error("max_context must be > 1");
    if (o.prefill_tokens_per_step.value_or(0) < 0) throw Error("prefill_tokens_per_step must be >= 0");
    if (o.encode_group.value_or(1) < 1) throw Error("encode_group must be >= 1");
    o.max_context = std::min(o.max_context, model.text.max_position_embeddings);
    return o;
  }

  static ModelAssets load_assets(const std::string& dir) {
    namespace fs = std::filesystem;
    if (dir.empty()) throw Error("no model directory given");
    if (!fs::is_directory(dir)) throw Error("model directory '" + dir + "' does not exist or is not a directory");
    auto files = model::load_model_files(dir);
    return ModelAssets{std::move(files), model::Tokenizer::from_model_dir(dir), model::ChatTemplate::from_model_dir(dir)};
  }

  model::WeightLoadOptions weight_options() const {
    model::WeightLoadOptions o;
    o.dtype = dtype_;
    // Read on the CPU (mapped, not copied, when stored in dtype); a GPU model copies what it needs
    // (with its fused projections) to the device itself.
    o.device = at::kCPU;
    return o;
  }

  nn::KvCacheShape cache_shape() const {
    const auto& text = assets_.files.model.text;
    nn::KvCacheShape shape{text.num_hidden_layers, 0, options_.kv_block_size, text.num_key_value_heads, text.head_dim()};
    const int64_t per_block = shape.bytes_per_token(dtype_) * shape.block_size;
    const int64_t budget = options_.kv_cache_bytes > 0
                               ? options_.kv_cache_bytes
                               : per_block * options_.max_batch * ((options_.max_context + shape.block_size - 1) / shape.block_size);
    shape.num_blocks = budget / per_block;
    if (shape.num_blocks <= 0) throw Error("kv_cache_bytes is smaller than one KV block (" + std::to_string(per_block) + " bytes)");
    // Against the machine before it is allocated: a KV cache larger than what the device can still
    // give is refused with the figures, not left to the allocator (or the kernel's OOM killer).
    const int64_t bytes = shape.num_blocks * per_block;
    const int64_t available =
        device_.is_cuda() ? kernels::available_device_memory_bytes(device_.has_index() ? device_.index() : 0)
                          : placement::host_facts().host_available_bytes.value_or(-1);
    if (available >= 0 && bytes > available)
      throw Error(fmt::format("the KV cache needs {} ({}), more than the {} {} has available; lower max_context or "
                              "max_batch, or set kv_cache_bytes",
                              placement::format_bytes(bytes),
                              options_.kv_cache_bytes > 0
                                  ? fmt::format("kv_cache_bytes {}", options_.kv_cache_bytes)
                                  : fmt::format("max_batch {} x max_context {}", options_.max_batch, options_.max_context),
                              placement::format_bytes(available), device_.str()));
    return shape;
  }

  // One device: the whole model and its runner. A pipeline: the plan's stages, each on its device.
  std::unique_ptr<ModelExecutor> make_executor(const stages::StageTuning& tuning) {
    if (!plan_) {
      model_ = std::make_unique<nn::Qwen25VL>(assets_.files.model, weights_, dtype_, device_);
      auto single = std::make_unique<SingleDeviceExecutor>(*model_, cache_shape(), dtype_, device_);
      single_ = single.get();
      return single;
    }
    const std::vector<stages::StageSpec> specs = stages::stage_specs(*plan_, tuning, [](const std::string& name) {
      return with_peak_reset(resolve_device(name));
    });
    const int micro_batches = stages::micro_batches(*plan_, tuning);
    stages::StageGraphs graphs;
    graphs.record = tuning.decode_graphs && options_.cuda_graphs;
    const int parts = std::max(1, std::min(options_.max_batch, micro_batches));
    graphs.max_rows = (std::max(options_.max_batch, 1) + parts - 1) / parts;
    graphs.max_context = options_.max_context;
    auto staged = std::make_unique<stages::StagedExecutor>(assets_.files.model, weights_, dtype_, specs, cache_shape(),
                                                           micro_batches, tuning.copy_through_host, graphs, tuning.lanes);
    decode_graphs_ = staged->replays_graphs();
    return staged;
  }

  SchedulerOptions scheduler_options() const {
    SchedulerOptions o;
    o.max_batch = static_cast<size_t>(options_.max_batch);
    o.max_context = options_.max_context;
    o.overlap_decode = options_.overlap_decode.value_or(device_.is_cuda());
    o.prefill_tokens_per_step = options_.prefill_tokens_per_step.value_or(0);
    o.encode_group = static_cast<size_t>(std::min(options_.encode_group.value_or(8), options_.max_batch));
    return o;
  }

  // Ends a request exactly once: bookkeeping under the lock, the user's callback outside it (a
  // callback may submit or cancel). Never call with mutex_ held.
  void complete(Sequence& s, Status status, std::string reason, std::string error) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      switch (status) {
        case Status::kAnswered: ++stats_.answered; break;
        case Status::kCancelled: ++stats_.cancelled; break;
        case Status::kExpired: ++stats_.expired; break;
        case Status::kFailed: ++stats_.failed; break;
      }
      live_.erase(s.id);
    }
    finish(s, status, std::move(reason), std::move(error));
  }

  // Ends a request that was cancelled or ran past its deadline; false when it may go on.
  // A cancelled request still waiting for the preparation thread gives its copied frames back now,
  // not when that thread reaches it (seconds, when it falls behind a fast source). Called with
  // mutex_ held, under which the thread takes requests from submitted_.
  void release_frames_if_unprepared(Sequence& s) {
    for (const auto& waiting : submitted_)
      if (waiting.get() == &s) s.media = RequestMedia{};  // prepare_loop ends it unread
  }

  bool end_if_stopped(Sequence& s) override {
    if (s.cancel_requested) {
      complete(s, Status::kCancelled, "cancelled", stopping_ ? "the engine is shutting down" : "cancelled by the caller");
      return true;
    }
    if (s.expired(Clock::now())) {
      complete(s, Status::kExpired, "expired", "the deadline passed before the answer was complete");
      return true;
    }
    return false;
  }

  // A device is lost: what waits for preparation fails now, what is being prepared fails in
  // prepare_loop or the scheduler, and submit() refuses the rest.
  void device_lost(const std::string& reason) override {
    std::deque<std::shared_ptr<Sequence>> pending;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      lost_ = reason;
      pending.swap(submitted_);
    }
    for (auto& s : pending) complete(*s, Status::kFailed, "failed", reason);
  }

  // Preparation thread: everything about a request that needs no network.
  void prepare_loop() {
    while (true) {
      std::shared_ptr<Sequence> s;
      std::string lost;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !submitted_.empty(); });
        if (submitted_.empty()) {  // stopping, nothing left to prepare
          scheduler_.close();      // the inference loop waits for exactly this to end
          return;
        }
        s = submitted_.front();
        submitted_.pop_front();
        lost = lost_;
      }
      if (!lost.empty()) {
        complete(*s, Status::kFailed, "failed", lost);
        continue;
      }
      if (end_if_stopped(*s)) continue;
      try {
        prepare(*s);
      } catch (const std::exception& e) {
        std::unique_lock<std::mutex> lock(mutex_);
        const std::string error = lost_.empty() ? e.what() : lost_;  // a lost device fails the frames' preparation too
        lock.unlock();
        complete(*s, Status::kFailed, "failed", error);
        continue;
      }
      if (end_if_stopped(*s)) continue;
      scheduler_.enqueue(std::move(s));
    }
  }

  void prepare(Sequence& s) {
    s.settings = resolve_generation(s.request.sampling, assets_.files.generation, assets_.files.model,
                                    options_.default_max_new_tokens);
    // On a GPU the frames are prepared there, on a stream of this thread's own that overlaps the
    // inference thread's work; it has finished when the prompt is handed over.
    kernels::run_on_side_stream(device_, [&] { s.prompt = prepare_prompt(assets_, s.request, s.media, device_); });
    s.media = {};  // the frames are in the prompt's pixels now
    const int64_t prompt_tokens = static_cast<int64_t>(s.prompt.ids.size());
    if (prompt_tokens >= options_.max_context)
      throw Error("the prompt has " + std::to_string(prompt_tokens) + " tokens, which leaves no room to answer within max_context " +
                  std::to_string(options_.max_context));
    s.settings.max_new_tokens = std::min(s.settings.max_new_tokens, options_.max_context - prompt_tokens);
    const int64_t blocks = executor_->blocks_for(prompt_tokens + s.settings.max_new_tokens);
    const int64_t total = executor_->total_blocks();
    if (blocks > total)
      throw Error("the request needs " + std::to_string(blocks) + " KV blocks (" + std::to_string(prompt_tokens) +
                  " prompt tokens + " + std::to_string(s.settings.max_new_tokens) + " new) but the KV cache holds only " +
                  std::to_string(total) + ": raise kv_cache_bytes or lower max_new_tokens");
    s.sampler = std::make_unique<SequenceSampler>(s.settings.sampling);
    // Compiled here, off the caller's thread (a grammar over 152k ids takes milliseconds or more).
    s.constraint = constraints_.compile(s.request.sampling, s.settings.eos_token_ids);
    s.decoder = std::make_unique<model::IncrementalDecoder>(assets_.tokenizer, /*skip_special_tokens=*/true);
    s.seen.assign(s.prompt.ids.begin(), s.prompt.ids.end());
  }

  // Inference thread: runs the scheduler's batch loop whenever requests are ready, until the
  // preparation thread has closed the scheduler and none is left.
  void inference_loop() {
    while (scheduler_.wait_for_work()) scheduler_.run_until_idle();
  }

  std::optional<Plan> plan_;
  at::Device device_;  // one device's, or where a pipeline prepares requests (its vision stage's)
  at::ScalarType dtype_;
  ModelAssets assets_;
  EngineOptions options_;  // as given, max_context at most the model's (checked_options)
  model::Weights weights_;
  std::unique_ptr<nn::Qwen25VL> model_;      // one device: the whole model (a pipeline's stages hold theirs)
  SingleDeviceExecutor* single_ = nullptr;   // one device: executor_, for its set-up
  bool decode_graphs_ = false;               // before executor_: a pipeline's make_executor() sets it
  std::unique_ptr<ModelExecutor> executor_;
  Scheduler scheduler_;
  structured::ConstraintCompiler constraints_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  RequestId next_id_ = 0;
  std::map<RequestId, std::shared_ptr<Sequence>> live_;
  std::deque<std::shared_ptr<Sequence>> submitted_;  // not yet prepared
  std::string lost_;  // why a device is lost (the engine serves no more); empty while it serves
  EngineStats stats_;
  std::thread prepare_thread_, infer_thread_;
};

}  // namespace
}  // namespace runtime

namespace runtime::stages {

// EngineOptions::devices over EngineOptions::device. One entry without a cap, placement not
// pipeline: that device, as before, unplanned. Otherwise qwenvl::plan() from the same options
// decides: replicas (or one capped device) run as engines of one device each behind one Engine;
// a pipeline runs the plan's stages on their devices.
std::unique_ptr<Engine> create_engine(EngineOptions options, const StageTuning& asked) {
  const Placement placement = parse_placement(options.placement);
  const StageTuning tuning = with_environment(asked);
  std::optional<Plan> pipeline;
  const std::string list = options.devices.empty() ? options.device : options.devices;
  const std::vector<DeviceSpec> specs = parse_devices(list);
  if (specs.size() == 1 && !specs.front().cap_bytes && placement != Placement::kPipeline) {
    options.device = specs.front().device;
  } else {
    PlanRequest request = placement::plan_request(options);
    request.devices = list;
    request.split = tuning.split;
    Plan planned = plan(request);
    if (planned.mode == Placement::kReplicas || (specs.size() == 1 && placement != Placement::kPipeline)) {
      return create_replicated_engine(options, planned, [](const EngineOptions& one) -> std::unique_ptr<Engine> {
        return std::make_unique<EngineImpl>(one, std::nullopt, StageTuning{});
      });
    }
    request.cuda_graphs = tuning.decode_graphs && options.cuda_graphs;  // stage graphs: off unless asked
    planned = plan(request);
    if (!planned.fits()) throw Error("devices '" + list + "': the layer split given does not fit:\n" + to_text(planned));
    pipeline = std::move(planned);
  }
  try {
    return std::make_unique<EngineImpl>(options, std::move(pipeline), tuning);
  } catch (const kernels::Error& e) {
    throw Error(e.what());  // the kernels' own error (a device fault while loading), as the engine's
  } catch (const c10::Error& e) {
    throw Error(e.what_without_backtrace());  // libtorch's, in one line: no stack trace for the user
  }
}

}  // namespace runtime::stages

std::unique_ptr<Engine> Engine::create(const EngineOptions& options) {
  return runtime::stages::create_engine(options, {});
}

}  // namespace qwenvl

// The C entry point of qwenvl/engine.h for clients that dlopen this library.
extern "C" qwenvl::Engine* qwenvl_engine_create(const qwenvl::EngineOptions* options, std::string* error) {
  try {
    if (options == nullptr) throw qwenvl::Error("qwenvl_engine_create: no options given");
    return qwenvl::Engine::create(*options).release();
  } catch (const std::exception& e) {
    if (error != nullptr) *error = e.what();
  } catch (...) {
    if (error != nullptr) *error = "unknown error while creating the engine";
  }
  return nullptr;
}
