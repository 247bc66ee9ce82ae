// What the scheduler asks of the network and its KV cache, and nothing of how or where it runs:
// a prefill for the sequences it admitted, a decode step for the rows still running, and the KV
// cache counted in blocks. One device runs it (SingleDeviceExecutor), or pipeline stages on
// several devices, each with its own layers and its own layers' cache (stages/staged_executor.h).
// A pipeline also offers lanes: decode steps of disjoint rows that the scheduler keeps in flight at
// once, one lane's step in a later stage while another's is in an earlier one.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <exception>
#include <future>
#include <vector>

#include "qwenvl/error.h"
#include "runtime/model_runner.h"

namespace qwenvl::runtime {

// Forwards run since the executor was made (EngineStats): a pipeline counts its micro-batches' forwards.
struct ForwardTally {
  int64_t vision = 0, prefill = 0, decode = 0;
  int64_t decode_rows = 0;  // sequences, summed over the decode steps
  int64_t mixed = 0;        // decode steps that also prefilled prompts (counted in prefill and decode too)
};

// A pipeline stage's memory as measured (EngineStats::devices).
struct StageMemory {
  size_t entry = 0;                 // its index in the device list
  int64_t measured_peak_bytes = 0;  // DeviceStats::measured_peak_bytes
  int64_t context_bytes = 0;        // DeviceStats::context_bytes
};

class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;

  // The KV budget. A sequence's block table names the same block ids in every cache that holds
  // some of its layers, so one count of blocks is the budget however many caches there are.
  // Blocks a sequence of `tokens` tokens needs in all, and blocks there are in all (both constant:
  // safe from any thread).
  virtual int64_t blocks_for(int64_t tokens) const = 0;
  virtual int64_t total_blocks() const = 0;
  // Appends `blocks` free blocks to slot.blocks; false (taking none) when fewer are free.
  virtual bool allocate(int64_t blocks, SequenceSlot& slot) = 0;
  // Gives slot.blocks back and empties them. A step already queued may still write to them: the
  // work of their next owner must run after it (it does where each device runs its work in order).
  virtual void release(SequenceSlot& slot) = 0;

  // Where the logits arrive and tokens are picked (the last stage's device).
  virtual at::Device device() const = 0;
  // Prefills every prompt (slots hold their blocks) and returns the fp32 logits of each prompt's
  // last token, [S, vocab], on device().
  virtual at::Tensor prefill(const std::vector<const PreparedPrompt*>& prompts,
                             const std::vector<SequenceSlot*>& slots) = 0;
  // Appends one token to every sequence and returns the fp32 logits of the next, [S, vocab], on
  // device(). The step may still be running on the device when this returns.
  virtual at::Tensor decode(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots) = 0;
  // The same with the tokens ([S] int64) on device(), where they were picked: the step is queued
  // behind the pick without the host reading them.
  virtual at::Tensor decode(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots) = 0;

  // Prefills that ride in decode steps: the decode rows share the prompts' weight reads instead of
  // reading every weight again in a step of their own. Offered by one device (not by a pipeline).
  virtual bool mixes_prefill() const { return false; }
  // The prompts' input embeddings (their media through the vision tower, all in one forward), one
  // [T_i, hidden] tensor per prompt, on device(); made when they are admitted.
  virtual std::vector<at::Tensor> embed_prompts(const std::vector<const PreparedPrompt*>& /*prompts*/) {
    throw Error("this executor runs prefills on their own (mixes_prefill is false)");
  }
  // One forward that appends `tokens` ([S] int64, on the host or device()) to `slots` and prefills
  // `prompts` (their embeddings from embed_prompts; their slots empty, holding their blocks). Returns
  // the fp32 logits of each decode row, then of each prompt's last token, [S + P, vocab], on
  // device(); the step may still be running there. S may be 0.
  virtual at::Tensor mixed_step(const at::Tensor& /*tokens*/, const std::vector<SequenceSlot*>& /*slots*/,
                                const std::vector<const PreparedPrompt*>& /*prompts*/,
                                const std::vector<at::Tensor>& /*embeddings*/,
                                const std::vector<SequenceSlot*>& /*prompt_slots*/) {
    throw Error("this executor runs prefills on their own (mixes_prefill is false)");
  }

  // Decode steps worth keeping in flight at once, each on rows of its own (a lane): a pipeline's
  // stages work on one lane's step while another's is in an earlier stage. 1: one step at a time.
  virtual int lanes() const { return 1; }
  // decode() without waiting for it: the step is launched, the slots advanced, and the future gives
  // its logits (or what failed it) once no work of the step is left on any device. Each call's steps
  // run in call order on each device. By default decode() itself, its result ready.
  virtual std::future<at::Tensor> decode_async(const std::vector<int64_t>& tokens,
                                               const std::vector<SequenceSlot*>& slots) {
    std::promise<at::Tensor> logits;
    try {
      logits.set_value(decode(tokens, slots));
    } catch (...) {
      logits.set_exception(std::current_exception());
    }
    return logits.get_future();
  }

  // What the engine reports (thread-safe): forwards run, and the phase times where measured.
  virtual ForwardTally forwards() const = 0;
  virtual PhaseTimes phase_times() const { return {}; }
  // A pipeline: each stage's memory; one device: none (the engine reports the device's peak).
  virtual std::vector<StageMemory> stage_memory() const { return {}; }
};

}  // namespace qwenvl::runtime
