// The vision tower's geometry for a packed batch of images and clips: each patch's (h, w)
// position, the window permutation and its inverse, and the attention segments of the window and
// full-attention blocks. Pure index arithmetic on the grids (transformers' vision_utils.get_vision_window_index and the cu_seqlens of
// Qwen2_5_VisionTransformerPretrainedModel.forward); no weights.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <vector>

namespace qwenvl::nn {

using GridTHW = std::array<int64_t, 3>;  // (t, h, w) in patches, as the processor's grid_thw

struct VisionGeometry {
  int64_t num_patches = 0;
  at::Tensor hw_positions;       // int64 [N, 2]: (h, w) of each patch, rows in merge-group order
  at::Tensor window_index;       // int64 [N/unit]: merge groups in window order
  at::Tensor reverse_index;      // int64 [N/unit]: its inverse (window order -> raster order)
  at::Tensor cu_window_seqlens;  // int32 [windows + 1], in patches, empty windows dropped
  at::Tensor cu_seqlens;         // int32 [frame groups + 1]: full attention per frame group
  int64_t max_window_seqlen = 0;
  int64_t max_seqlen = 0;
};

// grids: one (t, h, w) per image or clip in packed order. window_size and patch_size are pixels;
// merge_size is the spatial merge (2). Throws qwenvl::Error for a grid not divisible by merge_size.
VisionGeometry vision_geometry(const std::vector<GridTHW>& grids, int64_t merge_size,
                               int64_t window_size, int64_t patch_size);

}  // namespace qwenvl::nn
