// Building the host inputs of a packed step (step_inputs.h).
#include "runtime/step_inputs.h"

#include <algorithm>
#include <string>

#include "nn/mrope_positions.h"
#include "qwenvl/error.h"
#include "runtime/host_upload.h"

namespace qwenvl::runtime {

VisionInputs vision_inputs(const std::vector<const PreparedPrompt*>& prompts, const model::ModelConfig& config) {
  const int64_t unit = config.vision.spatial_merge_size * config.vision.spatial_merge_size;
  VisionInputs in;
  for (const auto* p : prompts)
    if (!p->image_grids.empty()) {
      in.pixels.push_back(p->image_pixels);
      in.grids.insert(in.grids.end(), p->image_grids.begin(), p->image_grids.end());
    }
  for (const auto& g : in.grids) in.image_tokens += g[0] * g[1] * g[2] / unit;
  for (const auto* p : prompts)
    if (!p->video_grids.empty()) {
      in.pixels.push_back(p->video_pixels);
      in.grids.insert(in.grids.end(), p->video_grids.begin(), p->video_grids.end());
    }
  return in;
}

PrefillInputs prefill_inputs(const std::vector<const PreparedPrompt*>& prompts, const std::vector<SequenceSlot*>& slots,
                             const model::ModelConfig& config) {
  PrefillInputs in;
  std::vector<at::Tensor> positions;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const PreparedPrompt& p = *prompts[i];
    if (p.ids.empty()) throw Error("prefill: empty prompt");
    in.ids.insert(in.ids.end(), p.ids.begin(), p.ids.end());
    in.lengths.push_back(static_cast<int64_t>(p.ids.size()));
    nn::MropeInput mi{p.token_types, p.image_grids, p.video_grids, p.video_second_per_grid};
    auto mp = nn::mrope_positions(mi, config.vision.spatial_merge_size, config.vision.tokens_per_second);
    positions.push_back(mp.positions);
    slots[i]->last_position = mp.last;
  }
  in.positions = at::cat(positions, 1);
  return in;
}

nn::AttentionBatch attention_batch(nn::AttentionBatch::Kind kind, const std::vector<int64_t>& new_tokens,
                                   const std::vector<SequenceSlot*>& slots, int64_t block_size, const at::Device& device) {
  const int64_t bs = block_size;
  const int64_t s = static_cast<int64_t>(slots.size());
  std::vector<int32_t> cu{0}, seq_lens;
  std::vector<int64_t> slot_mapping;
  size_t max_blocks = 1;
  nn::AttentionBatch b;
  b.kind = kind;
  for (int64_t i = 0; i < s; ++i) {
    const SequenceSlot& slot = *slots[i];
    const int64_t total = slot.length + new_tokens[i];
    if (blocks_for_tokens(total, bs) > static_cast<int64_t>(slot.blocks.size()))
      throw Error("KV cache: sequence of " + std::to_string(total) + " tokens holds only " +
                  std::to_string(slot.blocks.size()) + " blocks");
    for (int64_t t = slot.length; t < total; ++t) slot_mapping.push_back(int64_t{slot.blocks[t / bs]} * bs + t % bs);
    cu.push_back(cu.back() + static_cast<int32_t>(new_tokens[i]));
    seq_lens.push_back(static_cast<int32_t>(total));
    b.max_seqlen_q = std::max(b.max_seqlen_q, new_tokens[i]);
    b.max_seq_len = std::max(b.max_seq_len, total);
    max_blocks = std::max(max_blocks, slot.blocks.size());
  }
  std::vector<int32_t> tables(s * max_blocks, 0);
  for (int64_t i = 0; i < s; ++i) std::copy(slots[i]->blocks.begin(), slots[i]->blocks.end(), tables.begin() + i * max_blocks);
  b.cu_seqlens_q = upload(cu, at::kInt, device);
  b.seq_lens = upload(seq_lens, at::kInt, device);
  b.block_tables = upload(tables, at::kInt, device).view({s, static_cast<int64_t>(max_blocks)});
  b.slot_mapping = upload(slot_mapping, at::kLong, device);
  return b;
}

DecodeStep decode_step(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots, int64_t block_size) {
  const int64_t s = static_cast<int64_t>(slots.size()), bs = block_size;
  DecodeStep step;
  step.sequences = s;
  step.ids = tokens;
  step.positions.resize(3 * s);
  step.table_width = 1;
  for (int64_t i = 0; i < s; ++i) {
    const SequenceSlot& slot = *slots[i];
    const int64_t t = slot.length;  // the new token's index
    if (blocks_for_tokens(t + 1, bs) > static_cast<int64_t>(slot.blocks.size()))
      throw Error("KV cache: sequence of " + std::to_string(t + 1) + " tokens holds only " +
                  std::to_string(slot.blocks.size()) + " blocks");
    step.slot_mapping.push_back(int64_t{slot.blocks[t / bs]} * bs + t % bs);
    step.seq_lens.push_back(static_cast<int32_t>(t + 1));
    step.max_seq_len = std::max(step.max_seq_len, t + 1);
    step.table_width = std::max(step.table_width, static_cast<int64_t>(slot.blocks.size()));
    // generate() places each new token at the previous token's position + 1, on every axis.
    for (int64_t a = 0; a < 3; ++a) step.positions[a * s + i] = slot.last_position[a] + 1;
  }
  step.block_tables.assign(s * step.table_width, 0);
  for (int64_t i = 0; i < s; ++i)
    std::copy(slots[i]->blocks.begin(), slots[i]->blocks.end(), step.block_tables.begin() + i * step.table_width);
  return step;
}

}  // namespace qwenvl::runtime
