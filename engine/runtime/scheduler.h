// Continuous batching: the ready queue, admission under the KV budget, the running set and the
// batch loop. Requests ready to run wait in arrival order; the loop admits them while the batch
// and the KV cache have room (blocks reserved for the whole answer, so an admitted sequence never
// runs out), prefills what it admitted together, then runs one decode step per turn for every
// running sequence, admitting newly ready requests between steps. It reaches the network through a
// ModelExecutor and ends requests through the engine's RequestLifecycle.
//
// Lanes: where the executor offers several (a pipeline, ModelExecutor::lanes) the running
// sequences are split into that many lanes (lane.h), each its own decode step, and the steps of
// different lanes are in flight at once. Admitted sequences join the lane with the fewest rows, so
// that no lane holds more than max_batch / lanes (rounded up), as the planner sized a micro-batch.
// The turns go round the lanes: wait for the lane whose step was launched longest ago, pick its
// tokens, end what stops, launch its next step (decode_async) and go on to the next lane while
// that step runs; prefills still run whole, behind the steps in flight. A failed step fails its
// lane's sequences only. One lane (one device, replicas' engines) is the same loop with the step
// run at once (decode), and with overlap_decode.
//
// Mixed steps (one lane, an executor that mixes_prefill, prefill_tokens_per_step > 0): what is
// admitted while sequences decode waits to have its media encoded, in groups of encode_group (one
// vision forward for all; sooner when the batch has room for a whole group, after
// kEncodeWaitSteps steps of waiting, or once nothing else decodes), then waits to ride: each
// decode step also prefills waiting prompts of up to prefill_tokens_per_step tokens (at least one
// prompt, whole), so the running rows share the prompts' weight reads. What is admitted while
// nothing decodes is prefilled on its own, as before.
//
// Threads: enqueue() and close() from the thread that prepares requests, wait_for_work() and
// run_until_idle() from the inference thread, counts() from any. The scheduler's lock guards the
// ready queue, the running set and the KV blocks; it is never held while calling the lifecycle
// (whose calls take the engine's lock), so where both are held the engine's comes first.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/lane.h"
#include "runtime/model_executor.h"
#include "runtime/queued_step.h"
#include "runtime/request_lifecycle.h"
#include "runtime/sequence.h"
#include "runtime/step_times.h"

namespace qwenvl::runtime {

struct SchedulerOptions {
  size_t max_batch = 1;     // sequences that run together at most
  int64_t max_context = 0;  // prompt and answer tokens of one sequence at most
  bool overlap_decode = false;  // EngineOptions::overlap_decode, resolved for the device (one lane only)
  int64_t prefill_tokens_per_step = 0;  // EngineOptions::prefill_tokens_per_step, resolved (0: off)
  size_t encode_group = 1;  // EngineOptions::encode_group, resolved (at most max_batch)
};

class Scheduler {
 public:
  Scheduler(ModelExecutor& executor, RequestLifecycle& lifecycle, const SchedulerOptions& options);

  // A prepared request joins the ready queue.
  void enqueue(std::shared_ptr<Sequence> s);
  // No request will be enqueued any more: wait_for_work() returns false once the queue is empty.
  void close();
  // Marks `s` (not yet ended: the engine checks) cancelled if it has not been admitted; false once it runs. Atomic with
  // admission: a sequence marked here is never admitted. One waiting in the ready queue gives its prepared
  // inputs (the pixels) back at once: a stream that keeps replacing its oldest request does not pile them up
  // while the batch is full.
  bool cancel_if_not_admitted(Sequence& s);

  // Blocks until a request is ready (true) or the scheduler is closed with none ready (false).
  bool wait_for_work();
  // Runs the ready requests, admitting newly ready ones between decode steps, until none is left
  // running. A prefill of several sequences that runs out of device memory is retried in halves;
  // otherwise a failed prefill fails only the sequences it admitted; a failed decode step (a kernel
  // error, the device out of memory) fails its lane's sequences (with one lane, the running batch);
  // the scheduler keeps serving. A fault that loses a device (device_lost.h) stops it for good: the
  // lifecycle hears of it first, then every request it holds fails with the reason (once no lane's
  // step is left running), and each enqueued later fails at once.
  void run_until_idle();

  struct Counts {
    size_t queued = 0;   // ready, not yet admitted
    size_t running = 0;  // admitted, not yet retired
    int64_t kv_blocks_used = 0;  // held by the running sequences
    uint64_t split_prefills = 0;  // prefills out of memory retried in halves, since the start
    DecodeHostTimes decode_host;  // the decode steps' time by part, since the start
  };
  Counts counts() const;

 private:
  std::vector<Sequence*> admit(size_t room);
  void retire(const std::vector<Sequence*>& gone);
  void fail_all(const std::vector<Sequence*>& batch, const std::string& error);
  // Ends `batch` after `e`: failed with the reason, and the scheduler stopped when a device is lost.
  void failed(const std::vector<Sequence*>& batch, const std::exception& e);
  // Fails every ready request with `error`.
  void fail_ready(const std::string& error);
  std::string lost() const;  // why a device is lost; empty while serving
  // Runs attempt(batch); out of device memory with several sequences, again on each half.
  void in_halves_on_oom(const std::vector<Sequence*>& batch,
                        const std::function<void(const std::vector<Sequence*>&)>& attempt);
  // Prefills `admitted`; their logits rows join `logits` and they join `live`.
  void prefill(const std::vector<Sequence*>& admitted, std::vector<Sequence*>& live, at::Tensor& logits);
  // Prefills `admitted`; each joins the lane with the fewest rows then.
  void prefill(const std::vector<Sequence*>& admitted, std::vector<Lane>& lanes);
  // Mixed steps: encodes `admitted`'s prompts (in halves on running out of memory, as prefill)
  // and queues them to ride; the next ones to ride, within the step's token budget (those stopped
  // meanwhile end here).
  void embed(const std::vector<Sequence*>& admitted);
  // Mixed steps: `admitted` join those waiting to be encoded, which are encoded now if the group
  // is due (room: the batch's free places after this admission).
  void encode_when_due(const std::vector<Sequence*>& admitted, size_t room);
  // Takes the sequences waiting to be encoded; those stopped meanwhile end here.
  std::vector<Sequence*> take_unencoded();
  RidingPrompts take_riding();
  // Runs the step of `lane` with `riding` prompts in it.
  void step(Lane& lane, bool steady, const RidingPrompts& riding);
  // Picks every row's token of `lane` (its logits collected), ends the sequences that stop and
  // steps the rest: at once with one lane, launched (its future in lane.pending) with several.
  // `steady`: no prefill was queued since the step before (StepTimes).
  void step(Lane& lane, bool steady);

  ModelExecutor& executor_;
  RequestLifecycle& lifecycle_;
  const SchedulerOptions options_;
  const size_t lanes_;         // executor_.lanes(), at least 1
  const bool overlap_decode_;  // options_.overlap_decode with one lane
  const bool mixes_;           // mixed steps: one lane, the executor offers them, a token budget

  mutable std::mutex mutex_;
  std::condition_variable ready_or_closed_;
  std::deque<std::shared_ptr<Sequence>> ready_;
  std::map<Sequence*, std::shared_ptr<Sequence>> running_;  // keeps admitted sequences alive until retired
  bool closed_ = false;
  std::string lost_;  // set once, never cleared
  std::atomic<uint64_t> split_prefills_{0};
  StepTimes step_times_;
  // Mixed steps (the scheduler's thread only): admitted, waiting to be encoded, and the decode
  // steps since the first of them was admitted; admitted, encoded, waiting to ride.
  std::vector<Sequence*> unencoded_;
  size_t unencoded_steps_ = 0;
  std::deque<std::pair<Sequence*, at::Tensor>> embedded_;
};

}  // namespace qwenvl::runtime
