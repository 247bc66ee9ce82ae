// The vision tower (Qwen2_5_VisionTransformerPretrainedModel): patch embedding, blocks of window or
// full attention with the 2D rotary, then the patch merger; one packed forward for every image and
// clip of a step (spec §3). On a CUDA device the tower runs through qwenvl-kernels (RMSNorm fused with the
// residual add, rotary, SwiGLU, attention) with the gate and up projections fused into one GEMM; on
// the CPU it runs libtorch ops in the reference's order.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "nn/vision_geometry.h"

namespace qwenvl::nn {

class VisionTower {
 public:
  // On the CPU it holds references into `weights`, which must outlive the tower; on a CUDA device it
  // holds its own copies there. dtype: the compute dtype.
  VisionTower(const model::VisionConfig& config, const model::Weights& weights, at::ScalarType dtype,
              at::Device device = at::kCPU);

  // pixel_values [patches, C*T*P*P] of the packed items (the processor's layout, any float dtype);
  // grids: their (t, h, w). Returns [patches / merge², out_hidden_size] in raster order, items in
  // order: item i's rows are its t*h*w / merge² tokens.
  at::Tensor forward(const at::Tensor& pixel_values, const std::vector<GridTHW>& grids) const;

 private:
  struct Block {
    at::Tensor norm1, norm2, qkv_w, qkv_b, proj_w, proj_b;
    at::Tensor gate_w, gate_b, up_w, up_b, down_w, down_b;
    at::Tensor gate_up_w, gate_up_b;  // CUDA: [gate; up] as one projection (gate_w/up_w unset)
    bool full_attention = false;
  };
  at::Tensor attention(const Block& b, const at::Tensor& x, const struct CosSin& rope,
                       const at::Tensor& cu_seqlens, int64_t max_seqlen) const;
  // The CUDA path: hw_positions [N, 2] in window order, on the device.
  at::Tensor attention_kernels(const Block& b, const at::Tensor& x, const at::Tensor& hw_positions,
                               const at::Tensor& cu_seqlens, int64_t max_seqlen) const;
  at::Tensor blocks_kernels(at::Tensor x, const at::Tensor& hw_positions, const at::Tensor& cu_window,
                            const at::Tensor& cu_full, const struct VisionGeometry& g) const;

  model::VisionConfig config_;
  at::ScalarType dtype_;
  bool use_kernels_ = false;  // a CUDA device
  at::Tensor patch_w_;  // [hidden, C*T*P*P]: the Conv3d weight as a matrix (stride = kernel)
  std::vector<Block> blocks_;
  at::Tensor merger_norm_, merger_fc1_w_, merger_fc1_b_, merger_fc2_w_, merger_fc2_b_;
};

}  // namespace qwenvl::nn
