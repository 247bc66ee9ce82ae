// What the image and video processors take and give: 8-bit RGB frames in memory, and the
// patchified pixel values with their grid, as transformers' processor returns them.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace qwenvl::model {

// Packed 8-bit RGB rows (R, G, B per pixel), `row_stride` bytes from one row to the next
// (>= 3 * width). Not owned: the caller keeps the memory alive during the call.
struct RgbImage {
  const uint8_t* data = nullptr;
  int64_t width = 0;
  int64_t height = 0;
  int64_t row_stride = 0;
};

struct VisionInput {
  // [grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size^2] float32, CPU;
  // rows in transformers' order (2x2 merge groups together), as Qwen2VLImageProcessor._preprocess flattens them.
  at::Tensor pixel_values;
  // {grid_t, grid_h, grid_w} in patch units (image: grid_t = 1).
  std::array<int64_t, 3> grid_thw{};
};

}  // namespace qwenvl::model
