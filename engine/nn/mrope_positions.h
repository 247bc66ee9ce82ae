// The language model's 3D (time, height, width) position ids for one prompt, as transformers
// 5.17's get_rope_index builds them from the token types (modeling_qwen2_5_vl.py, Qwen2_5_VLModel.get_rope_index), and the positions of the
// tokens generated after it.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <vector>

#include "nn/vision_geometry.h"

namespace qwenvl::nn {

enum class TokenType : uint8_t { kText = 0, kImage = 1, kVideo = 2 };

struct MropeInput {
  std::vector<uint8_t> token_types;        // one per prompt token: 0 text, 1 image pad, 2 video pad
  std::vector<GridTHW> image_grids;        // in prompt order
  std::vector<GridTHW> video_grids;        // in prompt order
  std::vector<double> video_second_per_grid;  // one per video: temporal_patch_size / fps
};

struct MropePositions {
  at::Tensor positions;           // int64 [3, prompt tokens]
  std::array<int64_t, 3> last{};  // the last token's (t, h, w); generated token k sits at last + 1 + k
};

MropePositions mrope_positions(const MropeInput& input, int64_t spatial_merge_size,
                               int64_t tokens_per_second);

// Positions [3, n] of n tokens that follow a token at `last` (decode, or a continued prefill).
at::Tensor positions_after(const std::array<int64_t, 3>& last, int64_t n);

}  // namespace qwenvl::nn
