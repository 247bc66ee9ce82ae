// The vision tower (Qwen2_5_VisionTransformerPretrainedModel): patch embedding, blocks of window or
// full attention with the 2D rotary, then the patch merger; one packed forward for every image and
// clip of a step (transformers' Qwen2_5_VisionTransformerPretrainedModel.forward). The blocks call
// the operations of qwenvl-kernels (RMSNorm fused with the residual add, 2-D rotary, SwiGLU,
// attention, linear): our CUDA kernels on a GPU, their libtorch reference on the CPU; gate and up
// are one GEMM where the weights are copied to a GPU.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "nn/fused_projection.h"
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
    at::Tensor norm1, norm2, qkv_w, qkv_b, proj_w, proj_b, down_w, down_b;
    FusedProjection gate_up;
    bool full_attention = false;
  };
  // hw_positions [N, 2] in window order, on the device.
  at::Tensor attention(const Block& b, const at::Tensor& x, const at::Tensor& hw_positions,
                       const at::Tensor& cu_seqlens, int64_t max_seqlen) const;
  at::Tensor blocks(const at::Tensor& x, const at::Tensor& hw_positions, const at::Tensor& cu_window,
                    const at::Tensor& cu_full, const struct VisionGeometry& g) const;

  model::VisionConfig config_;
  at::ScalarType dtype_;
  at::Tensor patch_w_;  // [hidden, C*T*P*P]: the Conv3d weight as a matrix (stride = kernel)
  std::vector<Block> blocks_;
  at::Tensor merger_norm_, merger_fc1_w_, merger_fc1_b_, merger_fc2_w_, merger_fc2_b_;
};

}  // namespace qwenvl::nn
