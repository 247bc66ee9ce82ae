#include "runtime/model_runner.h"

#include <algorithm>
#include <string>

#include "kernels/attention.h"
#include "kernels/device/sync.h"
#include "qwenvl/error.h"
#include "runtime/host_upload.h"
#include "runtime/step_inputs.h"

namespace qwenvl::runtime {

ModelRunner::ModelRunner(const nn::Qwen25VL& model, nn::KvCache& cache)
    : model_(model), cache_(cache), device_(cache.k(0).device()) {}

int64_t ModelRunner::blocks_for(int64_t tokens) const { return blocks_for_tokens(tokens, cache_.shape().block_size); }

at::Tensor ModelRunner::prefill(const std::vector<const PreparedPrompt*>& prompts,
                                const std::vector<SequenceSlot*>& slots) {
  return prefill_on_device(prompts, slots).to(at::kCPU);
}

at::Tensor ModelRunner::decode(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots) {
  return decode_on_device(tokens, slots).to(at::kCPU);
}

at::Tensor ModelRunner::prefill_on_device(const std::vector<const PreparedPrompt*>& prompts,
                                          const std::vector<SequenceSlot*>& slots) {
  const MediaFeatures media = encode_media(prompts);
  const auto start = std::chrono::steady_clock::now();

  // One packed language-model forward for every prompt.
  const PrefillInputs in = prefill_inputs(prompts, slots, model_.config());
  const std::vector<int64_t>& lengths = in.lengths;
  auto batch = attention_batch(nn::AttentionBatch::Kind::kPrefill, lengths, slots, cache_.shape().block_size, device_);
  auto id_tensor = upload(in.ids, at::kLong, device_);
  auto embeddings = model_.embed(id_tensor, media.images, media.videos);
  auto hidden = model_.forward(embeddings, upload(in.positions, device_), batch, cache_);
  for (size_t i = 0; i < slots.size(); ++i) slots[i]->length += lengths[i];

  auto last_rows = batch.cu_seqlens_q.narrow(0, 1, static_cast<int64_t>(slots.size())).to(at::kLong) - 1;
  at::Tensor logits = model_.logits(hidden.index_select(0, last_rows)).to(at::kFloat);
  add_phase_time(prefill_us_, start);
  return logits;
}

// One vision forward for every item of the batch: all images (sequence order), then all clips.
ModelRunner::MediaFeatures ModelRunner::encode_media(const std::vector<const PreparedPrompt*>& prompts) {
  const VisionInputs vision = vision_inputs(prompts, model_.config());
  MediaFeatures media;
  if (vision.empty()) return media;
  const auto start = std::chrono::steady_clock::now();
  const at::Tensor features = model_.encode_vision(at::cat(vision.pixels), vision.grids);
  add_phase_time(vision_us_, start);
  media.images = features.narrow(0, 0, vision.image_tokens);
  media.videos = features.narrow(0, vision.image_tokens, features.size(0) - vision.image_tokens);
  return media;
}

std::vector<at::Tensor> ModelRunner::embed_prompts(const std::vector<const PreparedPrompt*>& prompts) {
  const MediaFeatures media = encode_media(prompts);
  std::vector<int64_t> ids;
  for (const PreparedPrompt* p : prompts) {
    if (p->ids.empty()) throw Error("prefill: empty prompt");
    ids.insert(ids.end(), p->ids.begin(), p->ids.end());
  }
  const at::Tensor packed = model_.embed(upload(ids, at::kLong, device_), media.images, media.videos);
  std::vector<at::Tensor> out;
  int64_t row = 0;
  for (const PreparedPrompt* p : prompts) {
    const auto n = static_cast<int64_t>(p->ids.size());
    out.push_back(packed.narrow(0, row, n));
    row += n;
  }
  return out;
}

at::Tensor ModelRunner::mixed_on_device(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots,
                                        const std::vector<const PreparedPrompt*>& prompts,
                                        const std::vector<at::Tensor>& embeddings,
                                        const std::vector<SequenceSlot*>& prompt_slots) {
  const auto s = static_cast<int64_t>(slots.size());
  if (tokens.dim() != 1 || tokens.size(0) != s || tokens.scalar_type() != at::kLong)
    throw Error("decode: one int64 token per sequence");
  if (prompts.empty() || prompts.size() != embeddings.size() || prompts.size() != prompt_slots.size())
    throw Error("mixed step: one embedding and one slot per prompt, at least one prompt");
  const auto start = std::chrono::steady_clock::now();
  const int64_t block_size = cache_.shape().block_size;
  const PrefillInputs in = prefill_inputs(prompts, prompt_slots, model_.config());
  // The packed rows: the prompts' (kMixed's layout), then one per decode row. The logits are
  // returned the other way round: the decode rows lead, as in a plain step.
  nn::AttentionBatch fresh = attention_batch(nn::AttentionBatch::Kind::kPrefill, in.lengths, prompt_slots, block_size, device_);
  const int64_t prompt_rows = in.positions.size(1);
  std::vector<at::Tensor> rows = embeddings;
  at::Tensor positions = in.positions;
  nn::AttentionBatch batch = fresh;
  DecodeStep step;
  if (s > 0) {
    // The host fills everything but the ids (zeros here), which come from `tokens`.
    step = decode_step(std::vector<int64_t>(slots.size(), 0), slots, block_size);
    rows.push_back(model_.embed_text(tokens.to(device_)));
    positions = at::cat({positions, at::tensor(step.positions, at::kLong).view({3, s})}, 1);
    const nn::AttentionBatch decode = decode_batch(step);
    batch.kind = nn::AttentionBatch::Kind::kMixed;
    batch.prefill_rows = prompt_rows;
    batch.seq_lens = decode.seq_lens;
    batch.max_seq_len = decode.max_seq_len;
    batch.block_tables = decode.block_tables;
    batch.slot_mapping = at::cat({fresh.slot_mapping, decode.slot_mapping});
  }
  const at::Tensor hidden = model_.forward(at::cat(rows), upload(positions, device_), batch, cache_);
  const at::Tensor last_prompt_rows = fresh.cu_seqlens_q.narrow(0, 1, static_cast<int64_t>(prompts.size())).to(at::kLong) - 1;
  const at::Tensor decode_rows = at::arange(prompt_rows, prompt_rows + s, last_prompt_rows.options());
  at::Tensor logits = model_.logits(hidden.index_select(0, at::cat({decode_rows, last_prompt_rows}))).to(at::kFloat);
  add_phase_time(prefill_us_, start);
  for (size_t i = 0; i < prompt_slots.size(); ++i) prompt_slots[i]->length += in.lengths[i];
  advance(step, slots);
  return logits;
}

void ModelRunner::add_phase_time(std::atomic<int64_t>& total_us, std::chrono::steady_clock::time_point start) const {
  if (!time_phases_) return;
  kernels::synchronize_device(device_);
  total_us += std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
}

PhaseTimes ModelRunner::phase_times() const {
  return {vision_us_.load() / 1e3, prefill_us_.load() / 1e3, decode_us_.load() / 1e3};
}

bool ModelRunner::enable_decode_graphs(int max_batch, int64_t max_context) {
  const auto& text = model_.config().text;
  if (!device_.is_cuda() || !kernels::paged_decode_has_cuda_kernel(model_.dtype(), text.num_attention_heads,
                                                                    text.num_key_value_heads, text.head_dim()))
    return false;
  graphs_ = std::make_unique<DecodeGraphs>(model_, cache_, max_batch, blocks_for(max_context));
  return true;
}

nn::AttentionBatch ModelRunner::decode_batch(const DecodeStep& step) const {
  const int64_t s = step.sequences;
  nn::AttentionBatch batch;
  batch.kind = nn::AttentionBatch::Kind::kDecode;
  batch.max_seqlen_q = 1;
  batch.max_seq_len = step.max_seq_len;
  std::vector<int32_t> cu(s + 1);
  for (int64_t i = 0; i <= s; ++i) cu[i] = static_cast<int32_t>(i);
  batch.cu_seqlens_q = upload(cu, at::kInt, device_);
  batch.seq_lens = upload(step.seq_lens, at::kInt, device_);
  batch.block_tables = upload(step.block_tables, at::kInt, device_).view({s, step.table_width});
  batch.slot_mapping = upload(step.slot_mapping, at::kLong, device_);
  return batch;
}

void ModelRunner::advance(const DecodeStep& step, const std::vector<SequenceSlot*>& slots) {
  for (int64_t i = 0; i < step.sequences; ++i) {
    slots[i]->length += 1;
    for (int64_t a = 0; a < 3; ++a) slots[i]->last_position[a] = step.positions[a * step.sequences + i];
  }
}

at::Tensor ModelRunner::decode_eager(const DecodeStep& step, const at::Tensor& device_ids) {
  const int64_t s = step.sequences;
  const nn::AttentionBatch batch = decode_batch(step);
  const at::Tensor positions = upload(step.positions, at::kLong, device_).view({3, s});
  const at::Tensor ids = device_ids.defined() ? device_ids : upload(step.ids, at::kLong, device_);
  const at::Tensor hidden = model_.forward(model_.embed_text(ids), positions, batch, cache_);
  return model_.logits(hidden).to(at::kFloat);
}

at::Tensor ModelRunner::decode_on_device(const std::vector<int64_t>& tokens,
                                         const std::vector<SequenceSlot*>& slots) {
  if (tokens.size() != slots.size()) throw Error("decode: one token per sequence");
  return run_decode_step(decode_step(tokens, slots, cache_.shape().block_size), at::Tensor(), slots);
}

at::Tensor ModelRunner::decode_on_device(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots) {
  if (tokens.dim() != 1 || tokens.size(0) != static_cast<int64_t>(slots.size()) || tokens.scalar_type() != at::kLong)
    throw Error("decode: one int64 token per sequence");
  if (tokens.device() != device_) throw Error("decode: the tokens are not on the network's device");
  // The host fills everything but the ids (zeros here), which the step takes from the device.
  return run_decode_step(decode_step(std::vector<int64_t>(slots.size(), 0), slots, cache_.shape().block_size), tokens,
                         slots);
}

at::Tensor ModelRunner::run_decode_step(const DecodeStep& step, const at::Tensor& device_ids,
                                        const std::vector<SequenceSlot*>& slots) {
  const auto start = std::chrono::steady_clock::now();
  at::Tensor logits = graphs_ != nullptr && graphs_->covers(step) ? graphs_->run(step, device_ids)
                                                                  : decode_eager(step, device_ids);
  add_phase_time(decode_us_, start);
  advance(step, slots);
  return logits;
}

}  // namespace qwenvl::runtime
