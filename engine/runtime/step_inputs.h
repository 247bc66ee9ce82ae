// The host's part of one packed step, the same whichever executor runs it (one device, or pipeline
// stages each with a micro-batch of the step): the prompts' media for one vision forward, their ids
// and M-RoPE positions, and the attention batch that says where each sequence's KV lives.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "nn/attention_batch.h"
#include "nn/vision_geometry.h"
#include "runtime/model_runner.h"

namespace qwenvl::runtime {

// Every image of the prompts (sequence order), then every clip: one vision forward's input.
struct VisionInputs {
  std::vector<at::Tensor> pixels;
  std::vector<nn::GridTHW> grids;
  int64_t image_tokens = 0;  // the features' first rows are the images', the rest the clips'
  bool empty() const { return grids.empty(); }
};
VisionInputs vision_inputs(const std::vector<const PreparedPrompt*>& prompts, const model::ModelConfig& config);

// The prompts' ids packed, their lengths and M-RoPE positions ([3, T] on the CPU); records each
// slot's last position.
struct PrefillInputs {
  std::vector<int64_t> ids, lengths;
  at::Tensor positions;
};
PrefillInputs prefill_inputs(const std::vector<const PreparedPrompt*>& prompts, const std::vector<SequenceSlot*>& slots,
                             const model::ModelConfig& config);

// The attention batch of `new_tokens[i]` new tokens appended to each slot (whose blocks must hold
// them), its tensors on `device`.
nn::AttentionBatch attention_batch(nn::AttentionBatch::Kind kind, const std::vector<int64_t>& new_tokens,
                                   const std::vector<SequenceSlot*>& slots, int64_t block_size, const at::Device& device);

// One decode step of `tokens[i]` appended to each slot (whose blocks must hold it), on the host:
// the eager path and the decode graphs (decode_graphs.h) of one device or a pipeline stage start
// from it.
DecodeStep decode_step(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots, int64_t block_size);

// Blocks a sequence of `tokens` tokens needs.
inline int64_t blocks_for_tokens(int64_t tokens, int64_t block_size) { return (tokens + block_size - 1) / block_size; }

}  // namespace qwenvl::runtime
