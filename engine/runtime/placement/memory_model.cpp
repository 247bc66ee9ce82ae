#include "runtime/placement/memory_model.h"

#include <algorithm>

namespace qwenvl::runtime::placement {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// The CUDA caching allocator's rounding (c10/core/AllocatorConfig.h, torch 2.11): every block is a
// multiple of 512 bytes; a block of 10 MiB or more gets a segment of its own rounded up to 2 MiB.
// (Blocks under 10 MiB share 2 MiB or 20 MiB segments; what those waste is fragmentation, below.)
constexpr int64_t kMinBlockSize = 512;
constexpr int64_t kMinLargeAlloc = 10 * kMiB;
constexpr int64_t kRoundLarge = 2 * kMiB;

// cuBLAS workspaces (aten/src/ATen/cuda/CublasHandlePool.cpp): one per (handle, stream) that runs a
// GEMM, 4096 KiB x 8 = 32 MiB on compute capability 9.0 (CUBLAS_WORKSPACE_CONFIG unset), and one
// cuBLASLt workspace of 1024 KiB (CUBLASLT_WORKSPACE_SIZE unset) beside it, both from the caching
// allocator.
constexpr int64_t kCublasWorkspaceBytes = 32 * kMiB + 1 * kMiB;

// Decode steps of up to this many rows take our GEMV kernel, larger ones cuBLAS (kernels/linear.h,
// kLinearMaxRows): a decode graph of a larger bucket is captured on a stream of its own
// (kernels/device/graph.cpp) and so brings its own cuBLAS workspace into the graph pool.
constexpr int64_t kGemvMaxRows = 8;

// Paged decode attention's split-KV partition (kernels/paged_decode_attention.cu, choose_partition).
constexpr int64_t kMaxPartition = 1024;
constexpr int64_t kMinPartition = 64;

// Pixel values reach the vision tower in fp32, as transformers' processor makes them
// (engine/preprocessing); the tower casts them to the compute dtype in its patch embedding.
constexpr int64_t kPixelValueBytes = 4;
// Logits are taken to fp32 for sampling (nn/qwen2_5_vl, runtime/model_runner.cpp).
constexpr int64_t kLogitBytes = 4;
constexpr int64_t kTokenIdBytes = 8;  // int64 ids and M-RoPE positions

// The caching allocator's fragmentation over transient tensors of changing shapes (segments a
// vision forward leaves that a prefill chunk cannot reuse, split blocks): assumed, to be measured
// (reserved against allocated peaks on the GPU).
constexpr double kFragmentation = 0.05;

int64_t allocated_size(int64_t bytes) {
  const int64_t rounded = (bytes + kMinBlockSize - 1) / kMinBlockSize * kMinBlockSize;
  return rounded >= kMinLargeAlloc ? (rounded + kRoundLarge - 1) / kRoundLarge * kRoundLarge : rounded;
}

int64_t rounding_of(const Part& part, int64_t dtype_bytes) {
  int64_t extra = 0;
  for (int64_t n : part.tensors) extra += allocated_size(n * dtype_bytes) - n * dtype_bytes;
  return extra;
}

// Bucket sizes of the decode graphs (runtime/decode_graphs.cpp): 1, 2, 4, ... below max, and max.
std::vector<int64_t> graph_buckets(int64_t max_rows) {
  std::vector<int64_t> sizes;
  for (int64_t b = 1; b < max_rows; b *= 2) sizes.push_back(b);
  sizes.push_back(max_rows);
  return sizes;
}

}  // namespace

MemoryModel::MemoryModel(const ModelParts& parts, const Workload& workload) : parts_(parts), w_(workload) {
  layer_elements_.push_back(0);
  layer_rounding_.push_back(0);
  for (const Part& layer : parts.layers) {
    layer_elements_.push_back(layer_elements_.back() + layer.elements);
    layer_rounding_.push_back(layer_rounding_.back() + rounding_of(layer, w_.dtype_bytes));
  }
  embeddings_rounding_ = rounding_of(parts.embeddings, w_.dtype_bytes);
  lm_head_rounding_ = rounding_of(parts.lm_head, w_.dtype_bytes);
  final_norm_rounding_ = rounding_of(parts.final_norm, w_.dtype_bytes);
  vision_rounding_ = rounding_of(parts.vision, w_.dtype_bytes);
}

// A tied LM head is the embedding matrix: shared where both are on one device, a copy elsewhere.
int64_t MemoryModel::weight_elements(const StageRoles& r) const {
  int64_t n = layer_elements_[r.end_layer] - layer_elements_[r.first_layer];
  if (r.embeddings) n += parts_.embeddings.elements;
  if (r.lm_head) n += parts_.final_norm.elements + (parts_.tied && r.embeddings ? 0 : parts_.lm_head.elements);
  if (r.vision) n += parts_.vision.elements;
  return n;
}

int64_t MemoryModel::weight_rounding(const StageRoles& r) const {
  int64_t n = layer_rounding_[r.end_layer] - layer_rounding_[r.first_layer];
  if (r.embeddings) n += embeddings_rounding_;
  if (r.lm_head) n += final_norm_rounding_ + (parts_.tied && r.embeddings ? 0 : lm_head_rounding_);
  if (r.vision) n += vision_rounding_;
  return n;
}

int64_t MemoryModel::weight_bytes(const StageRoles& roles) const { return weight_elements(roles) * w_.dtype_bytes; }

// K and V of every block for each of its layers (nn/kv_cache.cpp: [blocks, block_size, kv_heads,
// head_dim] per layer; runtime/engine.cpp: max_batch x ceil(max_context / block_size) blocks).
int64_t MemoryModel::kv_bytes(int64_t layers) const {
  return layers * 2 * w_.kv_blocks * w_.block_size * parts_.kv_heads * parts_.head_dim * w_.dtype_bytes;
}

// One decoder layer's working set for `rows` tokens (nn/language_model.cpp, forward): the layer's
// input, the residual stream and the normed h live throughout; the attention half adds the fused
// q/k/v projection, attention's output and o_proj's; the MLP half keeps the attention output (a
// local of the loop) and adds gate/up, their SwiGLU product and down_proj's output.
int64_t MemoryModel::decode_layer_peak(int64_t rows, const MemoryTarget& target) const {
  const int64_t h = parts_.hidden, q = parts_.heads * parts_.head_dim, kv = parts_.kv_heads * parts_.head_dim;
  const int64_t per_row = std::max(4 * h + 2 * q + 2 * kv, 5 * h + 3 * parts_.intermediate);
  int64_t scratch = 0;
  const int64_t capacity = w_.blocks_per_sequence * w_.block_size;
  if (target.cuda) {
    // Split-KV partials (kernels/paged_decode_attention.cu): the longest partition that still gives
    // every multiprocessor a block at this capacity; [rows x heads x splits] x (head_dim + 2) floats.
    int64_t partition = kMaxPartition;
    const int64_t pairs = rows * parts_.kv_heads;
    while (partition > kMinPartition && pairs * ((capacity + partition - 1) / partition) < target.sm_count)
      partition /= 2;
    const int64_t splits = (capacity + partition - 1) / partition;
    if (splits > 1) scratch = rows * parts_.heads * splits * (parts_.head_dim + 2) * 4;
  } else {
    // The reference (kernels/attention_reference.cpp) gathers one sequence's K and V at a time, in
    // fp32 when the cache is not.
    scratch = 2 * capacity * kv * (w_.dtype_bytes + (w_.dtype_bytes == 4 ? 0 : 4));
  }
  return rows * per_row * w_.dtype_bytes + scratch;
}

// A prefill chunk through one layer, as above, with attention's own scratch: flash attention's
// fp32 log-sum-exp on a GPU; on the host the reference's fp32 scores, softmax and masked copy of
// one prompt per kv-head group, its two causal masks, and fp32 copies of q, k, v.
int64_t MemoryModel::prefill_peak(const StageRoles& roles, const MemoryTarget& target) const {
  const int64_t t = w_.prefill_chunk, d = w_.dtype_bytes;
  const int64_t h = parts_.hidden, q = parts_.heads * parts_.head_dim, kv = parts_.kv_heads * parts_.head_dim;
  int64_t scratch = 0;
  if (target.cuda) {
    scratch = t * parts_.heads * 4;
  } else {
    const int64_t p = w_.longest_prompt, group = parts_.heads / parts_.kv_heads;
    scratch = 3 * group * p * p * 4 + 2 * p * p + (d == 4 ? 0 : p * (q + 2 * kv) * 4);
  }
  int64_t peak = std::max(t * (4 * h + 2 * q + 2 * kv) * d + scratch, t * (5 * h + 3 * parts_.intermediate) * d);
  peak += t * 4 * kTokenIdBytes;  // ids and the three M-RoPE positions
  // The step's vision features stay alive through the prefill they are spliced into.
  if (roles.embeddings) peak += w_.vision_tokens * parts_.hidden * d;
  // The last row of each prompt in the chunk through the LM head, in dtype and in fp32.
  if (roles.lm_head) peak += std::min(w_.max_batch, t) * parts_.vocab * (d + kLogitBytes);
  return peak;
}

// One step's vision forward (nn/vision_tower.cpp) over every admitted image: the fp32 pixels and
// the rotary positions (and their window-ordered copy) throughout; a block holds the residual, h,
// the fused qkv, attention's and the projection's outputs, or in its MLP half the residual, h, the
// attention output, gate/up, their product and down_proj's; the merger holds its input, fc1's and
// GELU's outputs and the merged tokens twice (window order, then raster order). Attention scratch:
// log-sum-exp on a GPU; on the host the reference's scores over one whole image (the full-attention
// blocks), three fp32 copies of them, and fp32 q, k, v.
int64_t MemoryModel::vision_peak(const MemoryTarget& target) const {
  const int64_t n = w_.vision_patches, d = w_.dtype_bytes, vh = parts_.vision_hidden;
  const int64_t fixed = n * parts_.patch_values * kPixelValueBytes + n * 2 * kTokenIdBytes * 2;
  int64_t scratch = 0;
  if (target.cuda) {
    scratch = n * parts_.vision_heads * 4;
  } else {
    const int64_t p = w_.image_patches;
    scratch = 3 * p * p * 4 + (d == 4 ? 0 : 3 * p * vh * 4);
  }
  const int64_t patch_embed = n * parts_.patch_values * d + 2 * n * vh * d;
  const int64_t attention = 7 * n * vh * d + scratch;
  const int64_t mlp = n * (4 * vh + 3 * parts_.vision_intermediate) * d;
  const int64_t merger = (3 * w_.vision_tokens * parts_.merged_hidden + 2 * w_.vision_tokens * parts_.vision_out) * d;
  return fixed + std::max({patch_embed, attention, mlp, merger});
}

int64_t MemoryModel::activation_bytes(const StageRoles& roles, const MemoryTarget& target, int64_t micro_batch) const {
  const bool graphs = records_graphs(target);
  int64_t peak = 0;
  if (roles.layers() > 0) {
    peak = prefill_peak(roles, target);
    if (!graphs) {  // eager decode steps allocate from the same pool
      int64_t decode = decode_layer_peak(micro_batch, target);
      if (roles.lm_head) decode += micro_batch * parts_.vocab * (w_.dtype_bytes + kLogitBytes);
      peak = std::max(peak, decode);
    }
  }
  if (roles.vision) peak = std::max(peak, vision_peak(target));
  if (roles.lm_head) {
    // Kept between steps (runtime/scheduler.cpp): the live rows' fp32 logits, twice while a prefill's
    // rows are appended; the ids each sequence has seen, for the repetition penalty.
    peak += 2 * w_.max_batch * parts_.vocab * kLogitBytes + w_.max_batch * w_.max_context * kTokenIdBytes;
  }
  return peak;
}

// The engine records decode graphs on a GPU where attention has a kernel (bf16 / fp16, head
// dimension 80 or 128); where it runs the libtorch reference it stays eager
// (ModelRunner::enable_decode_graphs).
bool MemoryModel::records_graphs(const MemoryTarget& target) const {
  return target.cuda && w_.cuda_graphs && w_.dtype_bytes == 2 && (parts_.head_dim == 80 || parts_.head_dim == 128);
}

// On a GPU: the stage's stream's cuBLAS workspace, and its decode graphs' private pool (the
// largest bucket's working set, which the smaller ones reuse; every bucket's input buffers and
// fp32 logits, which stay; a cuBLAS workspace for each bucket past the GEMV's rows).
int64_t MemoryModel::workspace_bytes(const StageRoles& roles, const MemoryTarget& target, int64_t micro_batch) const {
  if (!target.cuda) return 0;
  int64_t bytes = kCublasWorkspaceBytes;
  if (!records_graphs(target) || roles.layers() == 0) return bytes;
  bytes += decode_layer_peak(micro_batch, target) + micro_batch * parts_.hidden * w_.dtype_bytes;
  if (roles.lm_head) bytes += micro_batch * parts_.vocab * w_.dtype_bytes;
  for (int64_t rows : graph_buckets(micro_batch)) {
    bytes += 5 * rows * kTokenIdBytes +
             (rows + rows * w_.blocks_per_sequence) * 4;  // ids, positions, slots | lengths, tables
    if (roles.lm_head) bytes += rows * parts_.vocab * kLogitBytes;
    if (rows > kGemvMaxRows) bytes += kCublasWorkspaceBytes;
  }
  return bytes;
}

MemoryEstimate MemoryModel::stage(const StageRoles& roles, const MemoryTarget& target, int64_t micro_batch) const {
  MemoryEstimate m;
  if (roles.empty()) return m;
  m.weights = weight_bytes(roles);
  m.kv_cache = kv_bytes(roles.layers());
  m.activations = activation_bytes(roles, target, micro_batch);
  m.workspace = workspace_bytes(roles, target, micro_batch);
  m.margin = static_cast<int64_t>(kFragmentation * static_cast<double>(m.activations + m.workspace));
  if (target.cuda) {
    const int64_t kv_tensor = w_.kv_blocks * w_.block_size * parts_.kv_heads * parts_.head_dim * w_.dtype_bytes;
    m.margin += weight_rounding(roles) + 2 * roles.layers() * (allocated_size(kv_tensor) - kv_tensor);
  }
  return m;
}

}  // namespace qwenvl::runtime::placement
