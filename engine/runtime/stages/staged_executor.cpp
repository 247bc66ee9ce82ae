// A pipeline's stages, their micro-batches and the hand-offs between them (staged_executor.h).
#include "runtime/stages/staged_executor.h"

#include <algorithm>
#include <array>
#include <exception>
#include <future>
#include <string>
#include <thread>
#include <utility>

#include "kernels/device/sync.h"
#include "qwenvl/error.h"
#include "runtime/host_upload.h"
#include "runtime/stages/hidden_handoff.h"
#include "runtime/step_inputs.h"

namespace qwenvl::runtime::stages {

// One micro-batch of a step: its host inputs, built before it starts, and what travels with it.
struct StagedExecutor::MicroBatch {
  nn::AttentionBatch::Kind kind = nn::AttentionBatch::Kind::kDecode;
  int64_t rows = 0;
  VisionInputs vision;       // prefill: its prompts' media
  at::Tensor ids;            // [T] int64 (CPU, or the device the tokens were picked on)
  at::Tensor positions;      // [3, T] int64 on the CPU
  nn::AttentionBatch batch;  // tensors on the CPU; each stage takes them to its device
  at::Tensor image_features, video_features;  // from the vision stage
  at::Tensor hidden;         // between stages: the residual stream
  std::promise<at::Tensor> logits;
};

namespace {

nn::AttentionBatch on_device(const nn::AttentionBatch& b, const at::Device& device) {
  nn::AttentionBatch out = b;
  out.cu_seqlens_q = upload(b.cu_seqlens_q, device);
  out.seq_lens = upload(b.seq_lens, device);
  out.block_tables = upload(b.block_tables, device);
  out.slot_mapping = upload(b.slot_mapping, device);
  return out;
}

// [first, end) of each of `parts` near-equal parts of `rows` rows.
std::vector<std::pair<size_t, size_t>> split_rows(size_t rows, int parts) {
  std::vector<std::pair<size_t, size_t>> out;
  const size_t n = std::max<size_t>(1, std::min<size_t>(rows, static_cast<size_t>(parts)));
  size_t first = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t size = rows / n + (i < rows % n ? 1 : 0);
    out.emplace_back(first, first + size);
    first += size;
  }
  return out;
}

template <typename T>
std::vector<T> slice(const std::vector<T>& v, std::pair<size_t, size_t> range) {
  return std::vector<T>(v.begin() + static_cast<std::ptrdiff_t>(range.first),
                        v.begin() + static_cast<std::ptrdiff_t>(range.second));
}

}  // namespace

StagedExecutor::StagedExecutor(const model::ModelConfig& config, const model::Weights& weights, at::ScalarType dtype,
                               const std::vector<StageSpec>& stages, const nn::KvCacheShape& shape, int micro_batches,
                               bool copy_through_host)
    : config_(config),
      block_size_(shape.block_size),
      micro_batches_(micro_batches),
      copy_through_host_(copy_through_host),
      allocator_(shape.num_blocks),
      total_blocks_(shape.num_blocks) {
  if (micro_batches <= 0) throw Error("pipeline: micro-batches must be > 0");
  int visions = 0;
  for (const StageSpec& spec : stages) {
    Stage s;
    s.spec = spec;
    const int64_t layers = spec.part.end_layer - spec.part.first_layer;
    if (layers < 0 || (layers == 0 && !spec.part.vision)) throw Error("pipeline: a stage holds neither layers nor the vision tower");
    s.model = std::make_unique<nn::Qwen25VL>(config, weights, dtype, spec.device, spec.part);
    if (layers > 0) {
      nn::KvCacheShape own = shape;
      own.num_layers = layers;
      s.cache = std::make_unique<nn::KvCache>(own, dtype, spec.device);
    }
    if (spec.part.vision) {
      vision_ = stages_.size();
      ++visions;
    }
    stages_.push_back(std::move(s));
  }
  if (visions != 1) throw Error("pipeline: exactly one stage must run the vision tower");
  for (size_t i = 0; i < stages_.size(); ++i)
    if (stages_[i].cache) layer_order_.push_back(i);
  std::sort(layer_order_.begin(), layer_order_.end(), [&](size_t a, size_t b) {
    return stages_[a].spec.part.first_layer < stages_[b].spec.part.first_layer;
  });
  int64_t next = 0;
  for (size_t i : layer_order_) {
    if (stages_[i].spec.part.first_layer != next) throw Error("pipeline: the stages' layer ranges leave a gap or overlap");
    next = stages_[i].spec.part.end_layer;
  }
  if (layer_order_.empty() || next != config.text.num_hidden_layers ||
      !stages_[layer_order_.front()].spec.part.embeddings || !stages_[layer_order_.back()].spec.part.lm_head)
    throw Error("pipeline: the stages must hold every layer, the embeddings first and the LM head last");
  // Workers last: from here on the stages are fixed.
  for (Stage& s : stages_) s.worker = std::make_unique<StageWorker>(s.spec.device);
}

StagedExecutor::~StagedExecutor() {
  for (Stage& s : stages_) s.worker.reset();  // each finishes what it holds before the models go
}

int64_t StagedExecutor::blocks_for(int64_t tokens) const { return blocks_for_tokens(tokens, block_size_); }

bool StagedExecutor::allocate(int64_t blocks, SequenceSlot& slot) { return allocator_.allocate(blocks, slot.blocks); }

void StagedExecutor::release(SequenceSlot& slot) {
  allocator_.release(slot.blocks);
  slot.blocks.clear();
}

at::Device StagedExecutor::device() const { return stages_[layer_order_.back()].spec.device; }
at::Device StagedExecutor::vision_device() const { return stages_[vision_].spec.device; }

int StagedExecutor::micro_batches(size_t rows) const {
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(rows, static_cast<size_t>(micro_batches_))));
}

ForwardTally StagedExecutor::forwards() const {
  const auto& first = stages_[layer_order_.front()].model->counters();
  return {stages_[vision_].model->counters().vision.load(), first.prefill.load(), first.decode.load(),
          first.decode_rows.load()};
}

void StagedExecutor::run_from(size_t from, const std::shared_ptr<MicroBatch>& mb) {
  Stage& stage = stages_[layer_order_[from]];
  stage.worker->post([this, from, mb, &stage] {
    try {
      const at::Device device = stage.spec.device;
      const nn::Qwen25VL& model = *stage.model;
      at::Tensor x;
      if (from == 0) {
        const at::Tensor ids = hand_off(mb->ids, device, copy_through_host_);
        x = mb->kind == nn::AttentionBatch::Kind::kDecode
                ? model.embed_text(ids)
                : model.embed(ids,
                              mb->image_features.defined() ? hand_off(mb->image_features, device, copy_through_host_)
                                                           : at::Tensor(),
                              mb->video_features.defined() ? hand_off(mb->video_features, device, copy_through_host_)
                                                           : at::Tensor());
      } else {
        x = hand_off(mb->hidden, device, copy_through_host_);
      }
      mb->hidden = at::Tensor();
      const nn::AttentionBatch batch = on_device(mb->batch, device);
      if (stage.spec.before_forward) stage.spec.before_forward();
      x = model.forward(x, upload(mb->positions, device), batch, *stage.cache);
      if (stage.spec.delay_per_row.count() > 0) std::this_thread::sleep_for(stage.spec.delay_per_row * mb->rows);
      if (from + 1 < layer_order_.size()) {
        mb->hidden = x;
        run_from(from + 1, mb);
        return;
      }
      if (mb->kind != nn::AttentionBatch::Kind::kDecode)
        x = x.index_select(0, batch.cu_seqlens_q.narrow(0, 1, mb->rows).to(at::kLong) - 1);
      mb->logits.set_value(model.logits(x).to(at::kFloat));
    } catch (...) {
      mb->logits.set_exception(std::current_exception());
    }
  });
}

at::Tensor StagedExecutor::run(const std::vector<std::shared_ptr<MicroBatch>>& batches) {
  std::vector<std::future<at::Tensor>> results;
  for (const auto& mb : batches) {
    results.push_back(mb->logits.get_future());
    if (mb->vision.empty()) {
      run_from(0, mb);
      continue;
    }
    Stage& vision = stages_[vision_];
    vision.worker->post([this, mb, &vision] {
      try {
        const at::Tensor features = vision.model->encode_vision(at::cat(mb->vision.pixels), mb->vision.grids);
        const int64_t images = mb->vision.image_tokens;
        mb->image_features = features.narrow(0, 0, images);
        mb->video_features = features.narrow(0, images, features.size(0) - images);
      } catch (...) {
        mb->logits.set_exception(std::current_exception());
        return;
      }
      run_from(0, mb);
    });
  }
  // Every micro-batch ends (answered or failed) before this returns: none is left writing to the
  // slots' blocks when the scheduler acts on a failure.
  std::vector<at::Tensor> logits;
  std::exception_ptr failure;
  for (auto& r : results) {
    try {
      logits.push_back(r.get());
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  return logits.size() == 1 ? logits.front() : at::cat(logits);
}

at::Tensor StagedExecutor::prefill(const std::vector<const PreparedPrompt*>& prompts,
                                   const std::vector<SequenceSlot*>& slots) {
  std::vector<std::shared_ptr<MicroBatch>> batches;
  std::vector<std::vector<int64_t>> lengths;
  for (const auto& range : split_rows(prompts.size(), micro_batches(prompts.size()))) {
    const auto part_prompts = slice(prompts, range);
    const auto part_slots = slice(slots, range);
    auto mb = std::make_shared<MicroBatch>();
    mb->kind = nn::AttentionBatch::Kind::kPrefill;
    mb->rows = static_cast<int64_t>(part_prompts.size());
    mb->vision = vision_inputs(part_prompts, config_);
    PrefillInputs in = prefill_inputs(part_prompts, part_slots, config_);
    mb->ids = upload(in.ids, at::kLong, at::kCPU);
    mb->positions = in.positions;
    mb->batch = attention_batch(mb->kind, in.lengths, part_slots, block_size_, at::kCPU);
    lengths.push_back(std::move(in.lengths));
    batches.push_back(std::move(mb));
  }
  at::Tensor logits = run(batches);
  size_t i = 0;
  for (const auto& part : lengths)
    for (int64_t n : part) slots[i++]->length += n;
  return logits;
}

at::Tensor StagedExecutor::decode(const std::vector<int64_t>& tokens, const std::vector<SequenceSlot*>& slots) {
  if (tokens.size() != slots.size()) throw Error("decode: one token per sequence");
  return decode(upload(tokens, at::kLong, at::kCPU), slots);
}

at::Tensor StagedExecutor::decode(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots) {
  if (tokens.dim() != 1 || tokens.size(0) != static_cast<int64_t>(slots.size()) || tokens.scalar_type() != at::kLong)
    throw Error("decode: one int64 token per sequence");
  // The stages read the tokens on streams of their own: what picked them must have finished.
  kernels::synchronize_device(tokens.device());
  std::vector<std::shared_ptr<MicroBatch>> batches;
  std::vector<std::array<int64_t, 3>> positions(slots.size());
  for (const auto& range : split_rows(slots.size(), micro_batches(slots.size()))) {
    const auto part_slots = slice(slots, range);
    auto mb = std::make_shared<MicroBatch>();
    mb->kind = nn::AttentionBatch::Kind::kDecode;
    mb->rows = static_cast<int64_t>(part_slots.size());
    mb->ids = tokens.narrow(0, static_cast<int64_t>(range.first), mb->rows);
    // generate() places each new token at the previous token's position + 1, on every axis.
    std::vector<int64_t> pos(3 * mb->rows);
    for (int64_t r = 0; r < mb->rows; ++r)
      for (int64_t a = 0; a < 3; ++a) {
        positions[range.first + r][a] = part_slots[r]->last_position[a] + 1;
        pos[a * mb->rows + r] = positions[range.first + r][a];
      }
    mb->positions = upload(pos, at::kLong, at::kCPU).view({3, mb->rows});
    mb->batch = attention_batch(mb->kind, std::vector<int64_t>(part_slots.size(), 1), part_slots, block_size_, at::kCPU);
    batches.push_back(std::move(mb));
  }
  at::Tensor logits = run(batches);
  for (size_t i = 0; i < slots.size(); ++i) {
    slots[i]->length += 1;
    slots[i]->last_position = positions[i];
  }
  return logits;
}

}  // namespace qwenvl::runtime::stages
