#include "runtime/placement/time_model.h"

#include <algorithm>

namespace qwenvl::runtime::placement {
namespace {

// Hidden states crossing from one stage to the next: a device-to-device copy and the event the
// next stage waits on (latency assumed, to be measured), at PCIe 5.0 x16's 64 GB/s per direction
// less protocol overhead (~0.8): the slowest link between two GPUs of one host; NVLink is faster.
constexpr double kHandoffLatency = 20e-6;
constexpr double kHandoffBandwidth = 50e9;

double roofline(double flops, double bytes, const Rates& r) { return std::max(flops / r.flops, bytes / r.bandwidth); }

}  // namespace

Rates profile_rates(const DeviceProfile& profile, int64_t dtype_bytes, int sharing) {
  const double peak = dtype_bytes == 4 ? profile.float_flops : profile.half_flops;
  const double share = static_cast<double>(std::max(sharing, 1));
  return {peak * profile.flops_efficiency / share, profile.bandwidth * profile.bandwidth_efficiency / share};
}

TimeModel::TimeModel(const ModelParts& parts, const Workload& workload) : parts_(parts), w_(workload) {
  layer_matmul_.push_back(0);
  layer_elements_.push_back(0);
  for (const Part& layer : parts.layers) {
    layer_matmul_.push_back(layer_matmul_.back() + layer.matmul_elements);
    layer_elements_.push_back(layer_elements_.back() + layer.elements);
  }
}

// Per layer: its GEMMs read every weight once (memory-bound at small batches); decode attention
// reads each sequence's K and V over the mean context. The LM head reads vocab x hidden and writes
// fp32 logits.
double TimeModel::decode_step(const StageRoles& r, const Rates& rates, int64_t rows) const {
  const double d = static_cast<double>(w_.dtype_bytes), b = static_cast<double>(rows);
  const double layers = static_cast<double>(r.layers());
  const double matmul = static_cast<double>(layer_matmul_[r.end_layer] - layer_matmul_[r.first_layer]);
  const double weights = static_cast<double>(layer_elements_[r.end_layer] - layer_elements_[r.first_layer]) * d;
  const double qd = static_cast<double>(parts_.heads * parts_.head_dim);
  const double kvd = static_cast<double>(parts_.kv_heads * parts_.head_dim);
  const double context = w_.decode_context;
  double t = roofline(2 * b * matmul, weights, rates);
  t += layers * roofline(4 * b * context * qd, b * context * 2 * kvd * d, rates);
  const double h = static_cast<double>(parts_.hidden), vocab = static_cast<double>(parts_.vocab);
  if (r.embeddings) t += b * h * d / rates.bandwidth;
  if (r.lm_head) t += roofline(2 * b * vocab * h, vocab * h * d + b * vocab * 4, rates);
  return t;
}

// A chunk of prompts of the mean length: GEMMs over every token (compute-bound), causal attention
// within each prompt, the activations streamed through each layer; LM head on each prompt's last row.
double TimeModel::prefill_chunk(const StageRoles& r, const Rates& rates) const {
  const double d = static_cast<double>(w_.dtype_bytes), t = static_cast<double>(w_.prefill_chunk);
  const double prompt = static_cast<double>(std::min(w_.prompt_tokens, w_.prefill_chunk));
  const double layers = static_cast<double>(r.layers());
  const double matmul = static_cast<double>(layer_matmul_[r.end_layer] - layer_matmul_[r.first_layer]);
  const double weights = static_cast<double>(layer_elements_[r.end_layer] - layer_elements_[r.first_layer]) * d;
  const double h = static_cast<double>(parts_.hidden), inter = static_cast<double>(parts_.intermediate);
  const double qd = static_cast<double>(parts_.heads * parts_.head_dim);
  const double kvd = static_cast<double>(parts_.kv_heads * parts_.head_dim);
  double time = roofline(2 * t * matmul, weights + layers * t * (5 * h + 3 * inter + 2 * qd + 2 * kvd) * d, rates);
  time += layers * roofline(2 * t * prompt * qd, t * (2 * qd + 2 * kvd) * d, rates);
  const double vocab = static_cast<double>(parts_.vocab);
  if (r.embeddings) time += t * h * d / rates.bandwidth;
  if (r.lm_head) time += roofline(2 * (t / prompt) * vocab * h, vocab * h * d, rates);
  return time;
}

// One image of the mean request: patch embedding and every block's GEMMs over its patches, window
// attention in most blocks and attention over the whole image in the others, the merger over its
// tokens; the weights read once and each block's activations streamed.
double TimeModel::vision_image(const Rates& rates) const {
  const double d = static_cast<double>(w_.dtype_bytes), n = static_cast<double>(w_.request_image_patches);
  const double vh = static_cast<double>(parts_.vision_hidden), vi = static_cast<double>(parts_.vision_intermediate);
  const double depth = static_cast<double>(parts_.vision_depth), full = static_cast<double>(parts_.vision_full_blocks);
  const double merged = static_cast<double>(parts_.merged_hidden), tokens = n / static_cast<double>(parts_.merge_unit);
  const double gemm = 2 * n * (depth * (4 * vh * vh + 3 * vh * vi) + vh * static_cast<double>(parts_.patch_values)) +
                      2 * tokens * (merged * merged + merged * static_cast<double>(parts_.vision_out));
  const double traffic = static_cast<double>(parts_.vision.elements) * d + depth * n * (8 * vh + 3 * vi) * d;
  const double window = std::min(n, static_cast<double>(parts_.window_patches));
  const double attention = (depth - full) * 4 * n * window * vh + full * 4 * n * n * vh;
  return roofline(gemm, traffic, rates) + roofline(attention, depth * 4 * n * vh * d, rates);
}

StageTimes TimeModel::stage(const StageRoles& r, const Rates& rates, int64_t rows) const {
  StageTimes s;
  if (r.empty()) return s;
  const double joining = static_cast<double>(rows) / static_cast<double>(w_.new_tokens);  // requests per step
  const double prompt = static_cast<double>(w_.prompt_tokens);
  if (r.layers() > 0) {
    s.decode = decode_step(r, rates, rows);
    s.prefill = prefill_chunk(r, rates);
    s.step = s.decode + joining * prompt * s.prefill / static_cast<double>(w_.prefill_chunk);
    if (!r.embeddings) {  // the hidden states of the step and of the joining prompts arrive from the stage before
      const double bytes =
          (static_cast<double>(rows) + joining * prompt) * static_cast<double>(parts_.hidden * w_.dtype_bytes);
      s.step += kHandoffLatency + bytes / kHandoffBandwidth;
    }
  }
  if (r.vision) {
    s.vision = vision_image(rates);
    s.step += joining * s.vision;
  }
  return s;
}

}  // namespace qwenvl::runtime::placement
