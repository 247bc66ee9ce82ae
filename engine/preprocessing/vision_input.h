// What the image and video processors give: the patchified pixel values with their grid, as
// transformers' processor returns them.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace qwenvl::model {

struct VisionInput {
  // [grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size^2] float32 on the device
  // the processor was given; rows in transformers' order (2x2 merge groups together), as
  // Qwen2VLImageProcessor._preprocess flattens them.
  at::Tensor pixel_values;
  // {grid_t, grid_h, grid_w} in patch units (image: grid_t = 1).
  std::array<int64_t, 3> grid_thw{};
};

}  // namespace qwenvl::model
