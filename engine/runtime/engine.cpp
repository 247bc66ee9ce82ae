// The Engine of qwenvl/engine.h. Three stages, each on its own thread so that none waits for
// another's work: submit() copies the frames and queues the request (the caller's thread);
// the preparation thread renders, preprocesses and tokenizes, and fails at once what can never
// fit; the inference loop runs the ready requests together as one batch — one vision forward and
// one prefill for the requests admitted together, then one decode forward per step for every
// running sequence — and admits newly ready requests between steps while the batch and the KV
// cache have room (continuous batching). The loop lives in run_until_idle().
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "kernels/async_host_copy.h"
#include "kernels/device_memory.h"
#include "kernels/dispatch_counts.h"
#include "kernels/side_stream.h"
#include "model/config.h"
#include "model/weights.h"
#include "nn/qwen2_5_vl.h"
#include "qwenvl/engine.h"
#include "runtime/host_upload.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"
#include "runtime/request_preparation.h"
#include "runtime/sampling.h"
#include "runtime/sequence.h"
#include "runtime/stopping.h"

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

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const EngineOptions& options)
      : options_(options),
        device_(with_peak_reset(resolve_device(options.device))),
        dtype_(resolve_dtype(options.dtype, device_)),
        assets_(load_assets(options.model_dir)),
        weights_(model::Weights::load(options.model_dir, assets_.files.model, weight_options())),
        model_(assets_.files.model, weights_, dtype_, device_),
        cache_(cache_shape(), dtype_, device_),
        allocator_(cache_.shape().num_blocks),
        runner_(model_, cache_) {
    if (options.max_batch <= 0) throw Error("max_batch must be > 0");
#ifdef __GLIBC__
    // Parsing tokenizer.json and the configs leaves tens of MB of freed heap behind; hand it back
    // so that a loaded engine costs its weights (mapped), not the parser's high-water mark.
    malloc_trim(0);
#endif
    if (options.max_context <= 1) throw Error("max_context must be > 1");
    // Recorded before any request runs (and before the worker threads start), so the first answer
    // pays no recording.
    runner_.time_phases(options.time_phases);
    if (device_.is_cuda() && options.cuda_graphs)
      decode_graphs_ = runner_.enable_decode_graphs(options.max_batch, options.max_context);
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
      s->media = copy_media(s->request);  // the caller's frames may go once submit() returns
    } catch (const Error& e) {
      error = e.what();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      s->id = out.id = ++next_id_;
      ++stats_.submitted;
      if (error.empty() && !stopping_) {
        live_[s->id] = s;
        submitted_.push_back(s);
        wake_.notify_all();
        return out;
      }
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
    wake_.notify_all();
    return true;
  }

  EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    EngineStats s = stats_;
    s.queued = submitted_.size() + ready_.size();
    s.running = running_;
    s.vision_forwards = static_cast<uint64_t>(model_.counters().vision);
    s.prefill_forwards = static_cast<uint64_t>(model_.counters().prefill);
    s.decode_forwards = static_cast<uint64_t>(model_.counters().decode);
    if (device_.is_cuda()) s.peak_device_memory_bytes = kernels::peak_device_memory_bytes(device_.index());
    s.decode_graphs = decode_graphs_;
    const PhaseTimes phases = runner_.phase_times();
    s.vision_ms = phases.vision_ms;
    s.prefill_ms = phases.prefill_ms;
    s.decode_ms = phases.decode_ms;
    return s;
  }

  const EngineOptions& options() const override { return options_; }

 private:
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

  KvCacheShape cache_shape() const {
    const auto& text = assets_.files.model.text;
    KvCacheShape shape{text.num_hidden_layers, 0, options_.kv_block_size, text.num_key_value_heads, text.head_dim()};
    const int64_t per_block = shape.bytes_per_token(dtype_) * shape.block_size;
    const int64_t budget = options_.kv_cache_bytes > 0
                               ? options_.kv_cache_bytes
                               : per_block * options_.max_batch * ((options_.max_context + shape.block_size - 1) / shape.block_size);
    shape.num_blocks = budget / per_block;
    if (shape.num_blocks <= 0) throw Error("kv_cache_bytes is smaller than one KV block (" + std::to_string(per_block) + " bytes)");
    return shape;
  }

  // Ends a request exactly once: bookkeeping under the lock, the user's callback outside it (a
  // callback may submit or cancel). Never call with mutex_ held.
  void complete(Sequence& s, Status status, std::string reason, std::string error = {}) {
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
  bool end_if_stopped(Sequence& s) {
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

  // Preparation thread: everything about a request that needs no network.
  void prepare_loop() {
    while (true) {
      std::shared_ptr<Sequence> s;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !submitted_.empty(); });
        if (submitted_.empty()) {  // stopping, nothing left to prepare
          wake_.notify_all();      // the inference loop waits for exactly this to end
          return;
        }
        s = submitted_.front();
        submitted_.pop_front();
      }
      if (end_if_stopped(*s)) continue;
      try {
        prepare(*s);
      } catch (const std::exception& e) {
        complete(*s, Status::kFailed, "failed", e.what());
        continue;
      }
      if (end_if_stopped(*s)) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(s);
      wake_.notify_all();
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
    const int64_t blocks = runner_.blocks_for(prompt_tokens + s.settings.max_new_tokens);
    if (blocks > allocator_total_)
      throw Error("the request needs " + std::to_string(blocks) + " KV blocks (" + std::to_string(prompt_tokens) +
                  " prompt tokens + " + std::to_string(s.settings.max_new_tokens) + " new) but the KV cache holds only " +
                  std::to_string(allocator_total_) + ": raise kv_cache_bytes or lower max_new_tokens");
    s.sampler = std::make_unique<SequenceSampler>(s.settings.sampling);
    s.decoder = std::make_unique<model::IncrementalDecoder>(assets_.tokenizer, /*skip_special_tokens=*/true);
    s.seen.assign(s.prompt.ids.begin(), s.prompt.ids.end());
  }

  // Inference thread: runs the ready requests, admitting newly ready ones between decode steps
  // (continuous batching), until none is left; then waits for more.
  void inference_loop() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return (stopping_ && submitted_.empty()) || !ready_.empty(); });
        if (ready_.empty()) return;
      }
      run_until_idle();
    }
  }

  // Takes ready requests in arrival order while the batch has room for `room` more and the KV cache
  // has their blocks (reserved for the whole answer, so an admitted sequence never runs out).
  std::vector<Sequence*> admit(size_t room) {
    std::vector<Sequence*> admitted;
    std::vector<std::shared_ptr<Sequence>> stopped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (!ready_.empty() && admitted.size() < room) {
        auto s = ready_.front();
        if (s->cancel_requested || s->expired(Clock::now())) {
          stopped.push_back(s);
          ready_.pop_front();
          continue;
        }
        const int64_t need = runner_.blocks_for(static_cast<int64_t>(s->prompt.ids.size()) + s->settings.max_new_tokens);
        if (!allocator_.allocate(need, s->slot.blocks)) break;
        ready_.pop_front();
        running_set_[s.get()] = s;  // keeps the sequence alive while it runs
        admitted.push_back(s.get());
      }
      running_ = running_set_.size();
    }
    for (auto& s : stopped) end_if_stopped(*s);
    return admitted;
  }

  // Gives the KV blocks of sequences that left the batch (answered, stopped or failed) back.
  void retire(const std::vector<Sequence*>& gone) {
    if (gone.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    for (Sequence* s : gone) {
      allocator_.release(s->slot.blocks);
      s->slot.blocks.clear();
      running_set_.erase(s);
    }
    running_ = running_set_.size();
  }

  // Fails the sequences with `error` (those not already ended) and retires them.
  void fail_all(const std::vector<Sequence*>& batch, const std::string& error) {
    for (Sequence* s : batch)
      if (!s->done) complete(*s, Status::kFailed, "failed", error);
    retire(batch);
  }

  static std::string failure_reason(const std::exception& e, const at::Device& device) {
    if (const auto* oom = dynamic_cast<const c10::OutOfMemoryError*>(&e))
      return std::string("inference failed: out of memory on ") + device.str() + ": " + oom->what_without_backtrace();
    return std::string("inference failed: ") + e.what();
  }

  // The batch loop. Each turn: prefill what was admitted since the last turn (its logits rows join
  // the running ones), pick every row's next token, end the sequences that stop, then one decode
  // step for the rest. A failed prefill fails only the sequences it admitted; a failed step (a
  // kernel error, the device out of memory) fails the running batch. The engine keeps serving.
  // With EngineOptions::overlap_decode the next step is queued before the host reads the picked
  // tokens (queue_next_step): the device works on it while the host checks stops and streams text.
  void run_until_idle() {
    const bool on_device = device_.is_cuda();
    const bool overlap = options_.overlap_decode.value_or(on_device);
    std::vector<Sequence*> live;  // one per row of `logits`
    at::Tensor logits;
    while (true) {
      std::vector<Sequence*> admitted = admit(static_cast<size_t>(options_.max_batch) - live.size());
      if (!admitted.empty()) {
        try {
          std::vector<const PreparedPrompt*> prompts;
          std::vector<SequenceSlot*> slots;
          for (Sequence* s : admitted) {
            prompts.push_back(&s->prompt);
            slots.push_back(&s->slot);
          }
          const at::Tensor fresh = on_device ? runner_.prefill_on_device(prompts, slots) : runner_.prefill(prompts, slots);
          // A copy either way: decode logits live in graph memory that the next step overwrites.
          logits = live.empty() ? fresh : at::cat({logits, fresh});
          live.insert(live.end(), admitted.begin(), admitted.end());
        } catch (const std::exception& e) {
          fail_all(admitted, failure_reason(e, device_));
        }
      }
      if (live.empty()) return;
      try {
        std::vector<SamplingRow> rows;
        for (Sequence* s : live) rows.push_back({s->sampler.get(), &s->seen, s->generated.size()});
        const at::Tensor tokens = pick_tokens(logits, rows);  // on a GPU, possibly not computed yet
        std::vector<int64_t> picked;
        QueuedStep ahead;
        if (overlap) {
          kernels::AsyncHostCopy to_host(tokens);  // queued before the next step: waits for this pick only
          ahead = queue_next_step(tokens, live);
          const at::Tensor& host = to_host.wait();
          picked.assign(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
        } else {
          const at::Tensor host = tokens.to(at::kCPU).contiguous();
          picked.assign(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
        }
        std::vector<Sequence*> next, gone;
        std::vector<int64_t> next_tokens;
        std::vector<SequenceSlot*> next_slots;
        for (size_t row = 0; row < live.size(); ++row) {
          Sequence& s = *live[row];
          if (end_if_stopped(s)) {
            gone.push_back(&s);
            continue;
          }
          const auto token = static_cast<int32_t>(picked[row]);
          const StopReason reason = accept_token(s, token, options_.max_context);
          if (reason != StopReason::kNone) {
            complete(s, Status::kAnswered, stop_reason_name(reason));
            gone.push_back(&s);
            continue;
          }
          next.push_back(&s);
          next_tokens.push_back(token);
          next_slots.push_back(&s.slot);
        }
        // The queued step wrote one more entry into the cache of sequences that end here; their
        // blocks go back only after it (the device runs it before anything queued later).
        retire(gone);
        if (overlap) {
          std::tie(live, logits) = ahead.keep(next);
        } else {
          live = next;
          if (!live.empty())
            logits = on_device ? runner_.decode_on_device(next_tokens, next_slots) : runner_.decode(next_tokens, next_slots);
        }
      } catch (const std::exception& e) {
        fail_all(live, failure_reason(e, device_));
        live.clear();
      }
    }
  }

  // A decode step queued before its tokens were read: the sequences it appends to, in row order,
  // and its logits.
  struct QueuedStep {
    std::vector<Sequence*> rows;
    at::Tensor logits;

    // The rows of the sequences still running (`next`, in the same order), and their logits.
    std::pair<std::vector<Sequence*>, at::Tensor> keep(const std::vector<Sequence*>& next) const {
      std::vector<int64_t> kept;
      size_t r = 0;
      for (Sequence* s : next) {
        while (r < rows.size() && rows[r] != s) ++r;
        if (r == rows.size()) throw Error("decode: a running sequence missed the queued step");
        kept.push_back(static_cast<int64_t>(r++));
      }
      if (kept.size() == rows.size()) return {next, logits};
      if (kept.empty()) return {next, at::Tensor()};
      return {next, logits.index_select(0, upload(kept, at::kLong, logits.device()))};
    }
  };

  // Queues the decode step that appends `tokens` (one per row of `live`, where the network runs),
  // for every sequence that will still run after taking its token unless that token stops it: a
  // sequence reaching max_new_tokens or max_context with this token stops whatever it is, so it is
  // left out (its cache has no room for another entry). Stops by EOS, stop strings, cancellation or
  // deadline are known only later: those rows are computed and dropped (QueuedStep::keep).
  QueuedStep queue_next_step(const at::Tensor& tokens, const std::vector<Sequence*>& live) {
    QueuedStep step;
    std::vector<int64_t> rows;
    std::vector<SequenceSlot*> slots;
    for (size_t row = 0; row < live.size(); ++row) {
      const Sequence& s = *live[row];
      const auto after = static_cast<int64_t>(s.generated.size()) + 1;  // tokens generated with this one
      if (after >= s.settings.max_new_tokens ||
          static_cast<int64_t>(s.prompt.ids.size()) + after >= options_.max_context)
        continue;
      rows.push_back(static_cast<int64_t>(row));
      step.rows.push_back(live[row]);
      slots.push_back(&live[row]->slot);
    }
    if (rows.empty()) return step;
    const at::Tensor ids =
        rows.size() == live.size() ? tokens : tokens.index_select(0, upload(rows, at::kLong, tokens.device()));
    step.logits = runner_.decode_on_device(ids, slots);
    return step;
  }

  EngineOptions options_;
  at::Device device_;
  at::ScalarType dtype_;
  ModelAssets assets_;
  model::Weights weights_;
  nn::Qwen25VL model_;
  KvCache cache_;
  BlockAllocator allocator_;
  int64_t allocator_total_ = allocator_.num_blocks();
  ModelRunner runner_;
  bool decode_graphs_ = false;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  RequestId next_id_ = 0;
  std::map<RequestId, std::shared_ptr<Sequence>> live_;
  std::deque<std::shared_ptr<Sequence>> submitted_, ready_;
  size_t running_ = 0;
  std::map<Sequence*, std::shared_ptr<Sequence>> running_set_;  // admitted, not yet retired
  EngineStats stats_;
  std::thread prepare_thread_, infer_thread_;
};

}  // namespace
}  // namespace runtime

std::unique_ptr<Engine> Engine::create(const EngineOptions& options) {
  return std::make_unique<runtime::EngineImpl>(options);
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
