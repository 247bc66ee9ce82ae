#include "nn/vision_tower.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary.h"
#include "kernels/silu_and_mul.h"
#include "model/weight_names.h"
#include "qwenvl/error.h"

namespace qwenvl::nn {

namespace {
constexpr double kVisionNormEps = 1e-6;  // hard-coded in the reference, not read from the config
constexpr int64_t kMlpWidthMultiple = 8;  // 16 bytes of bf16
}

VisionTower::VisionTower(const model::VisionConfig& config, const model::Weights& weights,
                         at::ScalarType dtype, at::Device device)
    : config_(config), dtype_(dtype) {
  if (config.hidden_act != "silu")
    throw Error("vision config: hidden_act '" + config.hidden_act + "' is not supported (Qwen2.5-VL uses silu)");
  // On the CPU .to() keeps a tensor already in dtype (no copy); on a CUDA device it copies there.
  auto w = [&](const std::string& name) { return weights.get(name).to(device, dtype); };
  const std::string v = model::names::kVisual;
  patch_w_ = w(v + "patch_embed.proj.weight").reshape({config.hidden_size, -1});
  for (int64_t i = 0; i < config.depth; ++i) {
    const std::string p = model::names::vision_block(i), m = p + "mlp.";
    Block b;
    b.norm1 = w(p + "norm1.weight");
    b.norm2 = w(p + "norm2.weight");
    b.qkv_w = w(p + "attn.qkv.weight");
    b.qkv_b = w(p + "attn.qkv.bias");
    b.proj_w = w(p + "attn.proj.weight");
    b.proj_b = w(p + "attn.proj.bias");
    // On a GPU the MLP's width is padded with zeros to a multiple of 8 (Qwen2.5-VL's 3420 is not):
    // silu(0) * 0 = 0 meets zero columns of down_proj, so the output is the same, while unaligned rows
    // held SwiGLU to one element per access and down_proj to cuBLAS's 2-element-aligned sm80 GEMM,
    // 32% of a 64-frame forward on an H100 (scripts/bench/vision_bench.sh, 2026-12-07).
    b.gate_up = FusedProjection(weights, {m + "gate_proj.weight", m + "up_proj.weight"},
                                {m + "gate_proj.bias", m + "up_proj.bias"}, dtype, device, kMlpWidthMultiple);
    b.down_w = w(m + "down_proj.weight");
    if (device.is_cuda() && b.down_w.size(1) % kMlpWidthMultiple != 0) {
      const int64_t pad = kMlpWidthMultiple - b.down_w.size(1) % kMlpWidthMultiple;
      b.down_w = at::constant_pad_nd(b.down_w, {0, pad}).contiguous();
    }
    b.down_b = w(m + "down_proj.bias");
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

at::Tensor VisionTower::attention(const Block& b, const at::Tensor& x, const at::Tensor& hw_positions,
                                  const at::Tensor& cu_seqlens, int64_t max_seqlen) const {
  const int64_t n = x.size(0), heads = config_.num_heads, d = config_.head_dim();
  at::Tensor qkv = kernels::linear(x, b.qkv_w, b.qkv_b).view({n, 3, heads, d});
  // q and k are rotated in place inside the projection's output (fp32 rotation, as the reference).
  at::Tensor q = qkv.select(1, 0), k = qkv.select(1, 1);
  kernels::rotary_2d_(q, k, hw_positions, config_.rope_theta);
  at::Tensor out = kernels::flash_attention_varlen(q, k, qkv.select(1, 2), cu_seqlens, cu_seqlens, max_seqlen,
                                                   max_seqlen, 1.0 / std::sqrt(static_cast<double>(d)),
                                                   /*causal=*/false);
  return kernels::linear(out.view({n, heads * d}), b.proj_w, b.proj_b);
}

// The residual stream lives in `residual`, and each RMSNorm after the first takes the sublayer's
// output and adds it to the stream itself (rounded to the model dtype, then normalised: the
// reference's order). Returns the merger's normalised input.
at::Tensor VisionTower::blocks(const at::Tensor& x, const at::Tensor& hw_positions, const at::Tensor& cu_window,
                               const at::Tensor& cu_full, const VisionGeometry& g) const {
  at::Tensor residual = x.contiguous();
  if (blocks_.empty()) return kernels::rms_norm(residual, merger_norm_, kVisionNormEps);
  at::Tensor h = kernels::rms_norm(residual, blocks_.front().norm1, kVisionNormEps);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    const bool full = b.full_attention;
    at::Tensor attn = attention(b, h, hw_positions, full ? cu_full : cu_window, full ? g.max_seqlen : g.max_window_seqlen);
    h = kernels::fused_add_rms_norm(attn, residual, b.norm2, kVisionNormEps);
    const std::vector<at::Tensor> gate_up = b.gate_up(h);
    at::Tensor mlp = kernels::linear(kernels::silu_and_mul(gate_up[0], gate_up[1]), b.down_w, b.down_b);
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
  auto x = kernels::linear(pixel_values.to(device, dtype_), patch_w_);

  // Window order: permute whole merge groups, and the rotary positions with them.
  auto window_index = g.window_index.to(device);
  auto permute = [&](const at::Tensor& t) {
    return t.reshape({g.num_patches / unit, unit, -1}).index_select(0, window_index).reshape({g.num_patches, -1});
  };
  x = permute(x);
  auto cu_window = g.cu_window_seqlens.to(device), cu_full = g.cu_seqlens.to(device);
  const at::Tensor hw_positions = permute(g.hw_positions.to(device));
  // Merger on window-ordered groups, then back to raster order.
  auto merged = blocks(x, hw_positions, cu_window, cu_full, g).view({g.num_patches / unit, -1});
  merged = kernels::linear(at::gelu(kernels::linear(merged, merger_fc1_w_, merger_fc1_b_)), merger_fc2_w_, merger_fc2_b_);
  return merged.index_select(0, g.reverse_index.to(device));
}

}  // namespace qwenvl::nn
