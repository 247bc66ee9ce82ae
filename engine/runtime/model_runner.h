// Runs the network for a batch of sequences: one packed vision forward for every image and clip
// of the batch, one packed prefill for prompts of different lengths, then one decode forward per
// step for every live sequence. Owns where each sequence's KV lives (its block table) but no
// policy: which sequences run together is the scheduler's choice.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/kv_cache.h"
#include "nn/mrope_positions.h"
#include "nn/qwen2_5_vl.h"
#include "runtime/decode_graphs.h"
#include "runtime/decode_step.h"

namespace qwenvl::runtime {

// A prompt ready for the network: ids with their token types and the processed media.
struct PreparedPrompt {
  std::vector<int64_t> ids;
  std::vector<uint8_t> token_types;       // 0 text, 1 image pad, 2 video pad
  at::Tensor image_pixels;                // [patches, C*T*P*P] of all images, or undefined
  std::vector<nn::GridTHW> image_grids;
  at::Tensor video_pixels;                // [patches, C*T*P*P] of all clips, or undefined
  std::vector<nn::GridTHW> video_grids;
  std::vector<double> video_second_per_grid;
};

// A sequence's place in the KV cache.
struct SequenceSlot {
  std::vector<int32_t> blocks;          // its block table
  int64_t length = 0;                   // tokens in the cache
  std::array<int64_t, 3> last_position{};  // M-RoPE position of its last token
};

// Time spent in each phase of the network, when measured (ModelRunner::time_phases): the device is
// synchronised at the end of every phase, so the figures are exact but the phases no longer overlap
// the host's work. For benchmarks.
struct PhaseTimes {
  // prefill: the language model's prefill forwards, with the decode rows that ride in them (mixed steps)
  double vision_ms = 0, prefill_ms = 0, decode_ms = 0;
};

class ModelRunner {
 public:
  ModelRunner(const nn::Qwen25VL& model, nn::KvCache& cache);

  // Blocks a sequence of `tokens` tokens needs in all.
  int64_t blocks_for(int64_t tokens) const;

  // Prefills every prompt (slots must hold enough blocks for them) and returns the fp32 logits of
  // each prompt's last token, [S, vocab], on the CPU.
  at::Tensor prefill(const std::vector<const PreparedPrompt*>& prompts, const std::vector<SequenceSlot*>& slots);
  // The same logits left on the network's device (a GPU samples them where they are).
  at::Tensor prefill_on_device(const std::vector<const PreparedPrompt*>& prompts,
                               const std::vector<SequenceSlot*>& slots);

  // Appends one token to every sequence (slots must hold a block for it) and returns the fp32
  // logits of the next token, [S, vocab], on the CPU.
  at::Tensor decode(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots);
  at::Tensor decode_on_device(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots);
  // The same with the tokens already on the network's device ([S] int64, e.g. what sampling just
  // picked there): the step is queued behind them without the host reading them.
  at::Tensor decode_on_device(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots);

  // Prefills that ride in decode steps (ModelExecutor::mixes_prefill). The prompts' input
  // embeddings, with one vision forward for all of them: one [T_i, hidden] tensor per prompt, on
  // the network's device.
  std::vector<at::Tensor> embed_prompts(const std::vector<const PreparedPrompt*>& prompts);
  // One forward that appends `tokens` ([S] int64, on the host or the network's device) to `slots`
  // and prefills `prompts` (their embeddings from embed_prompts; their slots empty, holding their
  // blocks). Returns the fp32 logits of each decode row, then of each prompt's last token,
  // [S + P, vocab], on the network's device. S may be 0.
  at::Tensor mixed_on_device(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots,
                             const std::vector<const PreparedPrompt*>& prompts, const std::vector<at::Tensor>& embeddings,
                             const std::vector<SequenceSlot*>& prompt_slots);

  // From now on decode steps of up to max_batch sequences run as replayed device graphs, recorded
  // here for sequences of up to max_context tokens. False (steps stay eager) where a decode step
  // cannot be recorded: on the CPU, or where attention runs the libtorch reference (fp32, head
  // dims without a kernel), which reads the lengths on the host.
  bool enable_decode_graphs(int max_batch, int64_t max_context);
  bool decode_graphs_enabled() const { return graphs_ != nullptr; }

  at::Device device() const { return device_; }

  void time_phases(bool on) { time_phases_ = on; }
  // The phase times summed since the runner was made (zero unless time_phases is on). Thread-safe.
  PhaseTimes phase_times() const;

 private:
  // Adds the time since `start` to `total_us` after the device has finished (time_phases only).
  void add_phase_time(std::atomic<int64_t>& total_us, std::chrono::steady_clock::time_point start) const;

  // The prompts' media through the vision tower in one forward (undefined where they have none).
  struct MediaFeatures {
    at::Tensor images, videos;
  };
  MediaFeatures encode_media(const std::vector<const PreparedPrompt*>& prompts);
  // A decode step's attention batch, its tensors on the device.
  nn::AttentionBatch decode_batch(const DecodeStep& step) const;
  // Each slot of the step holds its new token: one more entry, at the step's position.
  static void advance(const DecodeStep& step, const std::vector<SequenceSlot*>& slots);

  // The step's logits; its ids from `device_ids` when defined, else from step.ids.
  at::Tensor decode_eager(const DecodeStep& step, const at::Tensor& device_ids);
  at::Tensor run_decode_step(const DecodeStep& step, const at::Tensor& device_ids,
                             const std::vector<SequenceSlot*>& slots);

  const nn::Qwen25VL& model_;
  nn::KvCache& cache_;
  at::Device device_;
  std::unique_ptr<DecodeGraphs> graphs_;
  bool time_phases_ = false;
  mutable std::atomic<int64_t> vision_us_{0}, prefill_us_{0}, decode_us_{0};
};

}  // namespace qwenvl::runtime
