// The last two steps of transformers 5.17's Qwen2-VL processors, fused into one pass: the fp32
// rescale + normalize (torchvision's normalize after the rescale, fused) and the patchify into (patches, C*T*P*P) rows with 2x2
// merge groups together (Qwen2VLImageProcessor._preprocess's reshape and transpose).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace qwenvl::model {

// For each channel and uint8 level, the float32 value transformers computes for it. The value of
// a pixel depends only on its channel and level, so a table built with the reference's own ATen
// ops ((fp32(u8) - fp32(mean)*255) / (fp32(std)*255), or the unfused variants when do_rescale or
// do_normalize is off) gives the same bits as running those ops on the whole image.
struct PixelTable {
  std::array<float, 3 * 256> values{};
  const float* channel(int64_t c) const { return values.data() + c * 256; }
};

// Throws qwenvl::Error when the mean or std does not have 3 entries, or std has a zero.
PixelTable make_pixel_table(const ProcessorConfig& config);

// frames: each a [1, 3, H, W] uint8 CPU tensor of one common size (any strides), H and W
// multiples of patch_size * merge_size. The frame count is padded up to a multiple of
// temporal_patch_size by repeating the last frame (an image is one frame, so it fills every
// temporal slot). Returns [grid_t * grid_h * grid_w, 3 * T * P * P] float32 and sets grid_thw.
at::Tensor patchify(const std::vector<at::Tensor>& frames, const PixelTable& table, const ProcessorConfig& config,
                    std::array<int64_t, 3>& grid_thw);

}  // namespace qwenvl::model
