#include "nn/vision_tower.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary.h"
#include "kernels/silu_and_mul.h"
#include "model/weight_names.h"
#include "nn/layers.h"
#include "nn/rotary.h"
#include "qwenvl/error.h"

namespace qwenvl::nn {

namespace {
constexpr double kVisionNormEps = 1e-6;  // hard-coded in the reference, not read from the config
}

VisionTower::VisionTower(const model::VisionConfig& config, const model::Weights& weights,
                         at::ScalarType dtype, at::Device device)
    : config_(config), dtype_(dtype), use_kernels_(device.is_cuda()) {
  if (config.hidden_act != "silu")
    throw Error("vision config: hidden_act '" + config.hidden_act + "' is not supported (Qwen2.5-VL uses silu)");
  // On the CPU .to() keeps a tensor already in dtype (no copy); on a CUDA device it copies there.
  auto w = [&](const std::string& name) { return weights.get(name).to(device, dtype); };
  // One GEMM for gate and up: the same products, rows of one matrix (concatenated before the copy).
  auto fused = [&](const std::string& a, const std::string& b) {
    return at::cat({weights.get(a), weights.get(b)}).to(device, dtype);
  };
  const std::string v = model::names::kVisual;
  patch_w_ = w(v + "patch_embed.proj.weight").reshape({config.hidden_size, -1});
  for (int64_t i = 0; i < config.depth; ++i) {
    const std::string p = model::names::vision_block(i);
    Block b;
    b.norm1 = w(p + "norm1.weight");
    b.norm2 = w(p + "norm2.weight");
    b.qkv_w = w(p + "attn.qkv.weight");
    b.qkv_b = w(p + "attn.qkv.bias");
    b.proj_w = w(p + "attn.proj.weight");
    b.proj_b = w(p + "attn.proj.bias");
    if (use_kernels_) {
      b.gate_up_w = fused(p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight");
      b.gate_up_b = fused(p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias");
    } else {
      b.gate_w = w(p + "mlp.gate_proj.weight");
      b.gate_b = w(p + "mlp.gate_proj.bias");
      b.up_w = w(p + "mlp.up_proj.weight");
      b.up_b = w(p + "mlp.up_proj.bias");
    }
    b.down_w = w(p + "mlp.down_proj.weight");
    b.down_b = w(p + "mlp.down_proj.bias");
    b.full_attention = std::find(config.fullatt_block_indexes.begin(), config.fullatt_block_indexes.end(), i) !=
                       config.fullatt_block_indexes.end();
    blocks_.push_back(std::move(b));
  }
  merger_norm_ = w(v + "merger.ln_q.weight");
  merger_fc1_w_ = w(v + "merger.mlp.0.weight");
  merger_fc1_b_ = w(v + "merger.mlp.0.bias");
  merger_fc2_w_ = w(v + "merger.mlp.2.weight");
  merger_fc2_b_ = w(v + "merger.mlp.2.bias");
}

at::Tensor VisionTower::attention(const Block& b, const at::Tensor& x, const CosSin& rope,
                                  const at::Tensor& cu_seqlens, int64_t max_seqlen) const {
  const int64_t n = x.size(0), heads = config_.num_heads, d = config_.head_dim();
  auto qkv = at::linear(x, b.qkv_w, b.qkv_b).view({n, 3, heads, d});
  auto q = apply_rotary_vision(qkv.select(1, 0), rope);
  auto k = apply_rotary_vision(qkv.select(1, 1), rope);
  auto v = qkv.select(1, 2).contiguous();
  auto out = kernels::flash_attention_varlen(q.contiguous(), k.contiguous(), v, cu_seqlens, cu_seqlens,
                                             max_seqlen, max_seqlen, 1.0 / std::sqrt(static_cast<double>(d)),
                                             /*causal=*/false);
  return at::linear(out.reshape({n, heads * d}), b.proj_w, b.proj_b);
}

at::Tensor VisionTower::attention_kernels(const Block& b, const at::Tensor& x, const at::Tensor& hw_positions,
                                          const at::Tensor& cu_seqlens, int64_t max_seqlen) const {
  const int64_t n = x.size(0), heads = config_.num_heads, d = config_.head_dim();
  at::Tensor qkv = at::linear(x, b.qkv_w, b.qkv_b).view({n, 3, heads, d});
  // q and k are rotated in place inside the projection's output (fp32 rotation, as the reference).
  at::Tensor q = qkv.select(1, 0), k = qkv.select(1, 1);
  kernels::rotary_2d_(q, k, hw_positions, config_.rope_theta);
  at::Tensor out = kernels::flash_attention_varlen(q, k, qkv.select(1, 2), cu_seqlens, cu_seqlens, max_seqlen,
                                                   max_seqlen, 1.0 / std::sqrt(static_cast<double>(d)),
                                                   /*causal=*/false);
  return at::linear(out.view({n, heads * d}), b.proj_w, b.proj_b);
}

// The blocks through the kernels: the residual stream lives in `residual`, and each RMSNorm after
// the first takes the sublayer's output and adds it to the stream itself (rounded to the model
// dtype, then normalised: the reference's order). Returns the merger's normalised input.
at::Tensor VisionTower::blocks_kernels(at::Tensor x, const at::Tensor& hw_positions, const at::Tensor& cu_window,
                                       const at::Tensor& cu_full, const VisionGeometry& g) const {
  at::Tensor residual = x.contiguous();
  at::Tensor h = kernels::rms_norm(residual, blocks_.front().norm1, kVisionNormEps);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    const bool full = b.full_attention;
    at::Tensor attn = attention_kernels(b, h, hw_positions, full ? cu_full : cu_window,
                                        full ? g.max_seqlen : g.max_window_seqlen);
    h = kernels::fused_add_rms_norm(attn, residual, b.norm2, kVisionNormEps);
    at::Tensor mlp = at::linear(kernels::silu_and_mul(at::linear(h, b.gate_up_w, b.gate_up_b)), b.down_w, b.down_b);
    const at::Tensor& next_norm = i + 1 < blocks_.size() ? blocks_[i + 1].norm1 : merger_norm_;
    h = kernels::fused_add_rms_norm(mlp, residual, next_norm, kVisionNormEps);
  }
  return h;
}

at::Tensor VisionTower::forward(const at::Tensor& pixel_values, const std::vector<GridTHW>& grids) const {
  const int64_t merge = config_.spatial_merge_size, unit = merge * merge;
  const VisionGeometry g = vision_geometry(grids, merge, config_.window_size, config_.patch_size);
  if (pixel_values.dim() != 2 || pixel_values.size(0) != g.num_patches || pixel_values.size(1) != patch_w_.size(1))
    throw Error("vision input: pixel_values of shape " + std::to_string(pixel_values.size(0)) + "x" +
                std::to_string(pixel_values.dim() > 1 ? pixel_values.size(1) : 0) + " do not match the grids (" +
                std::to_string(g.num_patches) + " patches of " + std::to_string(patch_w_.size(1)) + ")");
  const auto device = patch_w_.device();
  // Patch embedding: the reference casts the fp32 pixels to the weights' dtype first.
  auto x = at::linear(pixel_values.to(device, dtype_), patch_w_);

  // Window order: permute whole merge groups, and the rotary tables with them.
  auto window_index = g.window_index.to(device);
  auto permute = [&](const at::Tensor& t) {
    return t.reshape({g.num_patches / unit, unit, -1}).index_select(0, window_index).reshape({g.num_patches, -1});
  };
  x = permute(x);
  auto cu_window = g.cu_window_seqlens.to(device), cu_full = g.cu_seqlens.to(device);
  if (use_kernels_) {
    const at::Tensor hw_positions = permute(g.hw_positions.to(device));
    auto merged = blocks_kernels(x, hw_positions, cu_window, cu_full, g).view({g.num_patches / unit, -1});
    merged = at::linear(at::gelu(at::linear(merged, merger_fc1_w_, merger_fc1_b_)), merger_fc2_w_, merger_fc2_b_);
    return merged.index_select(0, g.reverse_index.to(device));
  }
  CosSin rope = vision_rotary(g.hw_positions, config_.head_dim(), config_.rope_theta);
  rope.cos = permute(rope.cos.to(device));
  rope.sin = permute(rope.sin.to(device));

  for (const Block& b : blocks_) {
    const bool full = b.full_attention;
    x = x + attention(b, rms_norm(x, b.norm1, kVisionNormEps), rope, full ? cu_full : cu_window,
                      full ? g.max_seqlen : g.max_window_seqlen);
    x = x + gated_mlp(rms_norm(x, b.norm2, kVisionNormEps), b.gate_w, b.gate_b, b.up_w, b.up_b, b.down_w, b.down_b);
  }

  // Merger on window-ordered groups, then back to raster order.
  auto merged = rms_norm(x, merger_norm_, kVisionNormEps).view({g.num_patches / unit, -1});
  merged = at::linear(at::gelu(at::linear(merged, merger_fc1_w_, merger_fc1_b_)), merger_fc2_w_, merger_fc2_b_);
  return merged.index_select(0, g.reverse_index.to(device));
}

}  // namespace qwenvl::nn
