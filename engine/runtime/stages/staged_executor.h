// The ModelExecutor of a pipeline: each stage holds a contiguous range of the language model's
// decoder layers on its device (the first also the embeddings, the last the final norm and LM
// head; the vision tower on the stage the plan puts it, which may hold no layers), its layers' KV
// cache and a worker thread of its own. One block allocator serves every cache: a sequence's block
// ids are the same in each. A micro-batch of sequences flows through the stages in order, stage k
// on micro-batch i while stage k+1 is on micro-batch i-1; the hidden states cross by device copies
// (hidden_handoff.h). Two ways of feeding them:
//  - prefill() and decode() split one step into micro-batches and return once every micro-batch has
//    left the last stage: the stages overlap within the step only, so with S stages and M
//    micro-batches a step costs M + S - 1 stage turns (prefills, and tests);
//  - lanes: where more than one stage holds layers the scheduler keeps lanes() (the micro-batch
//    count) decode steps in flight, each decode_async() one micro-batch of its own rows that does
//    not wait. While lane A's step n is in stage 2, lane B's step runs in stage 1, and lane A's
//    step n + 1 starts as soon as its tokens are picked: consecutive steps overlap too, and a
//    stage idles only when no lane's step is waiting for it.
// Every stage runs its jobs in the order they were posted; a micro-batch's promise is the only
// hand-back from the stage threads, and the slots (block tables, lengths) are read and advanced on
// the caller's thread when a step is launched, never on a stage's.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "nn/kv_cache.h"
#include "nn/model_part.h"
#include "nn/qwen2_5_vl.h"
#include "runtime/block_allocator.h"
#include "runtime/decode_graphs.h"
#include "runtime/decode_step.h"
#include "runtime/model_executor.h"
#include "runtime/stages/stage_tuning.h"
#include "runtime/stages/stage_worker.h"

namespace qwenvl::runtime::stages {

struct StageSpec {
  at::Device device = at::kCPU;
  size_t entry = 0;    // its index in the device list (fault_injection.h names stages by it)
  nn::ModelPart part;  // end_layer resolved (never -1)
  std::chrono::microseconds delay_per_row{0};  // StageTuning::delay_per_row's entry
  std::function<void()> before_forward;        // StageTuning::before_forward for this entry
};

// Decode graphs per stage (StageTuning::decode_graphs): each stage with layers on a GPU where
// attention has a kernel records its decode micro-batches of up to max_rows sequences, as one device
// does (runtime/decode_graphs.h), on its own thread into pools of its own, and replays them.
struct StageGraphs {
  bool record = false;
  int max_rows = 0;         // the largest micro-batch of a decode step
  int64_t max_context = 0;  // tokens of one sequence at most (the block tables' width)
};

class StagedExecutor final : public ModelExecutor {
 public:
  // stages: in the order of the device list; exactly one runs the vision tower, and the layer ranges
  // of those holding layers cover the model's layers in order. shape.num_layers is ignored (each
  // stage's cache holds its own layers). micro_batches: as StageTuning's, resolved (> 0).
  // lanes: offer micro_batches lanes (where more than one stage holds layers); false offers one
  // (StageTuning::lanes).
  StagedExecutor(const model::ModelConfig& config, const model::Weights& weights, at::ScalarType dtype,
                 const std::vector<StageSpec>& stages, const nn::KvCacheShape& shape, int micro_batches,
                 bool copy_through_host, const StageGraphs& graphs = {}, bool lanes = true);
  ~StagedExecutor() override;

  int64_t blocks_for(int64_t tokens) const override;
  int64_t total_blocks() const override { return total_blocks_; }
  bool allocate(int64_t blocks, SequenceSlot& slot) override;
  void release(SequenceSlot& slot) override;

  at::Device device() const override;
  at::Tensor prefill(const std::vector<const PreparedPrompt*>& prompts, const std::vector<SequenceSlot*>& slots) override;
  at::Tensor decode(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots) override;
  at::Tensor decode(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots) override;
  // The resolved micro-batch count where more than one stage holds layers (and lanes are on), else 1.
  int lanes() const override { return lanes_; }
  // One micro-batch of every row, posted to the first layer stage; the slots advance at once.
  std::future<at::Tensor> decode_async(const std::vector<int64_t>& tokens,
                                       const std::vector<SequenceSlot*>& slots) override;
  ForwardTally forwards() const override;
  // On a GPU each stage's pool's peak (stage_worker.h) and its share of the memory outside the
  // allocator; on the CPU the bytes each holds (its weights and KV cache).
  std::vector<StageMemory> stage_memory() const override;

  // Whether some stage replays decode graphs.
  bool replays_graphs() const { return replays_graphs_; }
  // The device the vision tower runs on (where prompts' pixels are best prepared).
  at::Device vision_device() const;
  // Micro-batches a step of `rows` sequences is split into.
  int micro_batches(size_t rows) const;

 private:
  struct Stage {
    StageSpec spec;
    std::unique_ptr<StageWorker> worker;  // destroyed after the model and cache: its pool holds them
    std::unique_ptr<nn::Qwen25VL> model;
    std::unique_ptr<nn::KvCache> cache;  // none without layers
    std::unique_ptr<DecodeGraphs> graphs;  // StageGraphs; destroyed before the cache it writes
    int64_t held_bytes = 0;              // its weights and KV cache (stage_memory.h)
  };
  struct MicroBatch;

  // Runs `mb` through the layer stages from position `from` on, then fulfils its promise.
  void run_from(size_t from, const std::shared_ptr<MicroBatch>& mb);
  // Launches every micro-batch and waits for all; returns their logits in row order.
  at::Tensor run(const std::vector<std::shared_ptr<MicroBatch>>& batches);
  // The decode micro-batch of rows [range.first, range.second) of `tokens` and `slots`; their next
  // positions go to `positions` (one per slot).
  std::shared_ptr<MicroBatch> decode_micro_batch(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots,
                                                 std::pair<size_t, size_t> range,
                                                 std::vector<std::array<int64_t, 3>>& positions) const;
  // Once a stage's device is lost (device_lost.h) every later job and step throws DeviceLost with
  // the first reason, running nothing: the scheduler then stops the engine.
  void throw_if_lost() const;
  // What a stage's job fails its micro-batch with, for `e` thrown on `device` (the current exception).
  std::exception_ptr failure(const std::exception& e, const at::Device& device);

  const model::ModelConfig config_;
  const int64_t block_size_;
  const int micro_batches_;
  const bool copy_through_host_;
  int lanes_ = 1;
  std::vector<Stage> stages_;
  std::vector<size_t> layer_order_;  // stages holding layers, first layers first
  size_t vision_ = 0;                // the stage running the vision tower
  BlockAllocator allocator_;
  const int64_t total_blocks_;
  bool replays_graphs_ = false;
  mutable std::mutex lost_mutex_;
  std::string lost_;  // why a device is lost; empty while all serve
};

}  // namespace qwenvl::runtime::stages
