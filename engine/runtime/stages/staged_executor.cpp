// A pipeline's stages, their micro-batches and the hand-offs between them (staged_executor.h).
#include "runtime/stages/staged_executor.h"

#include <algorithm>
#include <array>
#include <exception>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "kernels/attention.h"
#include "kernels/device/memory.h"
#include "kernels/device/sync.h"
#include "qwenvl/error.h"
#include "runtime/device_lost.h"
#include "runtime/fault_injection.h"
#include "runtime/host_upload.h"
#include "runtime/stages/hidden_handoff.h"
#include "runtime/stages/stage_memory.h"
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
  DecodeStep step;           // a decode micro-batch where stages replay graphs: the same on the host
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

// Whether a stage on `device` can record its decode steps: on a GPU where attention has a kernel
// (as ModelRunner::enable_decode_graphs decides for one device).
bool records_graphs(const model::ModelConfig& config, at::ScalarType dtype, const at::Device& device) {
  const auto& text = config.text;
  return device.is_cuda() &&
         kernels::paged_decode_has_cuda_kernel(dtype, text.num_attention_heads, text.num_key_value_heads, text.head_dim());
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
                               bool copy_through_host, const StageGraphs& graphs, bool lanes)
    : config_(config),
      block_size_(shape.block_size),
      micro_batches_(micro_batches),
      copy_through_host_(copy_through_host),
      allocator_(shape.num_blocks),
      total_blocks_(shape.num_blocks) {
  if (micro_batches <= 0) throw Error("pipeline: micro-batches must be > 0");
  int visions = 0;
  stages_.reserve(stages.size());  // jobs hold references to their stage
  for (const StageSpec& spec : stages) {
    const int64_t layers = spec.part.end_layer - spec.part.first_layer;
    if (layers < 0 || (layers == 0 && !spec.part.vision)) throw Error("pipeline: a stage holds neither layers nor the vision tower");
    Stage& s = stages_.emplace_back();
    s.spec = spec;
    s.worker = std::make_unique<StageWorker>(spec.device);
    nn::KvCacheShape own = shape;
    own.num_layers = layers;
    // Made on the stage's thread, so that its weights, KV cache and graphs' buffers are in its pool.
    s.worker->run_now([&] {
      s.model = std::make_unique<nn::Qwen25VL>(config, weights, dtype, spec.device, spec.part);
      if (layers > 0) s.cache = std::make_unique<nn::KvCache>(own, dtype, spec.device);
      if (layers > 0 && graphs.record && records_graphs(config, dtype, spec.device))
        s.graphs = std::make_unique<DecodeGraphs>(*s.model, *s.cache, graphs.max_rows,
                                                  blocks_for_tokens(graphs.max_context, shape.block_size),
                                                  DecodeGraphEnds{spec.part.embeddings, spec.part.lm_head});
    });
    replays_graphs_ = replays_graphs_ || s.graphs != nullptr;
    s.held_bytes = part_weight_bytes(weights, spec.part, config.text.num_hidden_layers) +
                   (layers > 0 ? own.bytes_per_token(dtype) * own.num_blocks * own.block_size : 0);
    if (spec.part.vision) {
      vision_ = stages_.size() - 1;
      ++visions;
    }
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
  // With one stage of layers there is nothing for a second lane's step to overlap with.
  if (lanes && layer_order_.size() > 1) lanes_ = micro_batches_;
}

StagedExecutor::~StagedExecutor() {
  // Each finishes what it holds before the models go, and its pool stays until they have gone.
  for (Stage& s : stages_) s.worker->stop();
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

std::vector<StageMemory> StagedExecutor::stage_memory() const {
  std::map<c10::DeviceIndex, int64_t> sharing;  // stages per CUDA device
  for (const Stage& s : stages_)
    if (s.spec.device.is_cuda()) ++sharing[s.spec.device.index()];
  std::map<c10::DeviceIndex, int64_t> outside;
  for (const auto& [index, stages] : sharing) outside[index] = kernels::memory_outside_allocator_bytes(index);
  std::vector<StageMemory> out;
  for (const Stage& s : stages_) {
    StageMemory m;
    m.entry = s.spec.entry;
    if (s.spec.device.is_cuda()) {
      m.measured_peak_bytes = s.worker->peak_reserved_bytes() + (s.graphs ? s.graphs->pool_reserved_bytes() : 0);
      m.context_bytes = outside[s.spec.device.index()] / sharing[s.spec.device.index()];
    } else {
      m.measured_peak_bytes = s.held_bytes;
    }
    out.push_back(m);
  }
  return out;
}

ForwardTally StagedExecutor::forwards() const {
  const auto& first = stages_[layer_order_.front()].model->counters();
  return {stages_[vision_].model->counters().vision.load(), first.prefill.load(), first.decode.load(),
          first.decode_rows.load()};
}

void StagedExecutor::run_from(size_t from, const std::shared_ptr<MicroBatch>& mb) {
  Stage& stage = stages_[layer_order_[from]];
  stage.worker->post([this, from, mb, &stage] {
    const at::Device device = stage.spec.device;
    try {
      throw_if_lost();  // nothing more runs once a device is lost
      const nn::Qwen25VL& model = *stage.model;
      const bool decode = mb->kind == nn::AttentionBatch::Kind::kDecode;
      const bool last = from + 1 == layer_order_.size();
      const bool replay = decode && stage.graphs != nullptr && stage.graphs->covers(mb->step);
      // Held until this stage's work on it has finished (the wait below): the sending stage's pool
      // may reuse its memory as soon as it is freed.
      const at::Tensor input = hand_off(from == 0 ? mb->ids : mb->hidden, device, copy_through_host_);
      mb->hidden = at::Tensor();
      at::Tensor x = input;
      throw_if_device_lost_injected(stage.spec.entry);
      if (stage.spec.before_forward) stage.spec.before_forward();
      if (replay) {
        // A copy: the graphs' memory is rewritten by their next replay, which may come before the
        // next stage (or the sampler) has read this one.
        x = stage.graphs->run(mb->step, x).clone();
      } else {
        if (from == 0)
          x = decode ? model.embed_text(x)
                     : model.embed(x,
                                   mb->image_features.defined()
                                       ? hand_off(mb->image_features, device, copy_through_host_)
                                       : at::Tensor(),
                                   mb->video_features.defined()
                                       ? hand_off(mb->video_features, device, copy_through_host_)
                                       : at::Tensor());
        const nn::AttentionBatch batch = on_device(mb->batch, device);
        x = model.forward(x, upload(mb->positions, device), batch, *stage.cache);
        if (last) {
          if (!decode) x = x.index_select(0, batch.cu_seqlens_q.narrow(0, 1, mb->rows).to(at::kLong) - 1);
          x = model.logits(x).to(at::kFloat);
        }
      }
      if (stage.spec.delay_per_row.count() > 0) std::this_thread::sleep_for(stage.spec.delay_per_row * mb->rows);
      // What is handed on has been computed (the next stage reads it on a stream of its own), and a
      // fault of this stage's work surfaces here, in this stage.
      kernels::synchronize_device(device);
      if (!last) {
        mb->hidden = x;
        run_from(from + 1, mb);
        return;
      }
      mb->logits.set_value(std::move(x));
    } catch (const std::exception& e) {
      mb->logits.set_exception(failure(e, device));
    } catch (...) {
      mb->logits.set_exception(std::current_exception());
    }
  });
}

void StagedExecutor::throw_if_lost() const {
  std::lock_guard<std::mutex> lock(lost_mutex_);
  if (!lost_.empty()) throw DeviceLost(lost_);
}

std::exception_ptr StagedExecutor::failure(const std::exception& e, const at::Device& device) {
  const std::optional<std::string> reason = device_lost_reason(e, device);
  if (!reason) return std::current_exception();
  std::lock_guard<std::mutex> lock(lost_mutex_);
  if (lost_.empty()) lost_ = *reason;  // the first fault is the reason
  return std::make_exception_ptr(DeviceLost(lost_));
}

at::Tensor StagedExecutor::run(const std::vector<std::shared_ptr<MicroBatch>>& batches) {
  throw_if_lost();
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
        throw_if_lost();
        const at::Tensor features = vision.model->encode_vision(at::cat(mb->vision.pixels), mb->vision.grids);
        const int64_t images = mb->vision.image_tokens;
        mb->image_features = features.narrow(0, 0, images);
        mb->video_features = features.narrow(0, images, features.size(0) - images);
        kernels::synchronize_device(vision.spec.device);  // the first layer stage reads them on its own stream
      } catch (const std::exception& e) {
        mb->logits.set_exception(failure(e, vision.spec.device));
        return;
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
  std::exception_ptr first_failure;
  for (auto& r : results) {
    try {
      logits.push_back(r.get());
    } catch (...) {
      if (!first_failure) first_failure = std::current_exception();
    }
  }
  if (first_failure) {
    throw_if_lost();  // a lost device is the reason, whichever micro-batch failed first
    std::rethrow_exception(first_failure);
  }
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

std::shared_ptr<StagedExecutor::MicroBatch> StagedExecutor::decode_micro_batch(
    const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots, std::pair<size_t, size_t> range,
    std::vector<std::array<int64_t, 3>>& positions) const {
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
  if (replays_graphs_)  // the ids come from mb->ids
    mb->step = decode_step(std::vector<int64_t>(part_slots.size(), 0), part_slots, block_size_);
  return mb;
}

at::Tensor StagedExecutor::decode(const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots) {
  if (tokens.dim() != 1 || tokens.size(0) != static_cast<int64_t>(slots.size()) || tokens.scalar_type() != at::kLong)
    throw Error("decode: one int64 token per sequence");
  // The stages read the tokens on streams of their own: what picked them must have finished.
  kernels::synchronize_device(tokens.device());
  std::vector<std::shared_ptr<MicroBatch>> batches;
  std::vector<std::array<int64_t, 3>> positions(slots.size());
  for (const auto& range : split_rows(slots.size(), micro_batches(slots.size())))
    batches.push_back(decode_micro_batch(tokens, slots, range, positions));
  at::Tensor logits = run(batches);
  for (size_t i = 0; i < slots.size(); ++i) {
    slots[i]->length += 1;
    slots[i]->last_position = positions[i];
  }
  return logits;
}

std::future<at::Tensor> StagedExecutor::decode_async(const std::vector<int64_t>& tokens,
                                                     const std::vector<SequenceSlot*>& slots) {
  if (tokens.size() != slots.size() || slots.empty()) throw Error("decode: one token per sequence");
  throw_if_lost();
  std::vector<std::array<int64_t, 3>> positions(slots.size());
  // Everything the stages read is built here, from the slots as they are now: the slots may advance
  // (and, once the step has ended, change owner) while the step runs.
  auto mb = decode_micro_batch(upload(tokens, at::kLong, at::kCPU), slots, {0, slots.size()}, positions);
  std::future<at::Tensor> logits = mb->logits.get_future();
  run_from(0, mb);
  for (size_t i = 0; i < slots.size(); ++i) {
    slots[i]->length += 1;
    slots[i]->last_position = positions[i];
  }
  return logits;
}

}  // namespace qwenvl::runtime::stages
