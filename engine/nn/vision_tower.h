// The vision tower (Qwen2_5_VisionTransformerPretrainedModel): patch embedding, blocks of window or
// full attention with the 2D rotary, then the patch merger; one packed forward for every image and
// clip of a step (spec §3).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "nn/vision_geometry.h"

namespace qwenvl::nn {

class VisionTower {
 public:
  // Holds references into `weights`, which must outlive the tower. dtype: the compute dtype.
  VisionTower(const model::VisionConfig& config, const model::Weights& weights, at::ScalarType dtype);

  // pixel_values [patches, C*T*P*P] of the packed items (the processor's layout, any float dtype);
  // grids: their (t, h, w). Returns [patches / merge², out_hidden_size] in raster order, items in
  // order: item i's rows are its t*h*w / merge² tokens.
  at::Tensor forward(const at::Tensor& pixel_values, const std::vector<GridTHW>& grids) const;

 private:
  struct Block {
    at::Tensor norm1, norm2, qkv_w, qkv_b, proj_w, proj_b;
    at::Tensor gate_w, gate_b, up_w, up_b, down_w, down_b;
    bool full_attention = false;
  };
  at::Tensor attention(const Block& b, const at::Tensor& x, const struct CosSin& rope,
                       const at::Tensor& cu_seqlens, int64_t max_seqlen) const;

  model::VisionConfig config_;
  at::ScalarType dtype_;
  at::Tensor patch_w_;  // [hidden, C*T*P*P]: the Conv3d weight as a matrix (stride = kernel)
  std::vector<Block> blocks_;
  at::Tensor merger_norm_, merger_fc1_w_, merger_fc1_b_, merger_fc2_w_, merger_fc2_b_;
};

}  // namespace qwenvl::nn
