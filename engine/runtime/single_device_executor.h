// The ModelExecutor of a model on one device: one KV cache of every layer, its block allocator and
// the ModelRunner that runs the network there.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "nn/kv_cache.h"
#include "nn/qwen2_5_vl.h"
#include "runtime/block_allocator.h"
#include "runtime/model_executor.h"
#include "runtime/model_runner.h"

namespace qwenvl::runtime {

class SingleDeviceExecutor final : public ModelExecutor {
 public:
  // The cache is made on `device` in `dtype` (the model's).
  SingleDeviceExecutor(const nn::Qwen25VL& model, const nn::KvCacheShape& shape, at::ScalarType dtype, at::Device device);

  int64_t blocks_for(int64_t tokens) const override { return runner_.blocks_for(tokens); }
  int64_t total_blocks() const override { return total_blocks_; }
  bool allocate(int64_t blocks, SequenceSlot& slot) override;
  void release(SequenceSlot& slot) override;

  at::Device device() const override { return runner_.device(); }
  at::Tensor prefill(const std::vector<const PreparedPrompt*>& prompts, const std::vector<SequenceSlot*>& slots) override;
  at::Tensor decode(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots) override;
  at::Tensor decode(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots) override;
  bool mixes_prefill() const override { return true; }
  std::vector<at::Tensor> embed_prompts(const std::vector<const PreparedPrompt*>& prompts) override;
  at::Tensor mixed_step(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots,
                        const std::vector<const PreparedPrompt*>& prompts, const std::vector<at::Tensor>& embeddings,
                        const std::vector<SequenceSlot*>& prompt_slots) override;

  // Set up before the first request (see ModelRunner).
  void time_phases(bool on) { runner_.time_phases(on); }
  bool enable_decode_graphs(int max_batch, int64_t max_context) {
    return runner_.enable_decode_graphs(max_batch, max_context);
  }
  PhaseTimes phase_times() const override { return runner_.phase_times(); }
  ForwardTally forwards() const override {
    const auto& c = model_.counters();
    return {c.vision.load(), c.prefill.load(), c.decode.load(), c.decode_rows.load(), c.mixed.load()};
  }

 private:
  const nn::Qwen25VL& model_;
  nn::KvCache cache_;
  BlockAllocator allocator_;
  const int64_t total_blocks_;  // read by the preparation thread while the allocator changes
  ModelRunner runner_;
};

}  // namespace qwenvl::runtime
