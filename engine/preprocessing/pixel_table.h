// The rescale + normalize step of transformers 5.17's Qwen2-VL processors as a table: the fp32
// value of each uint8 level per channel (torchvision's normalize after the rescale, fused), which
// kernels::prepare_frames looks every pixel up in.
#pragma once

#include <array>

#include "model/config.h"

namespace qwenvl::model {

// For each channel and uint8 level, the float32 value transformers computes for it. The value of
// a pixel depends only on its channel and level, so a table built with the reference's own ATen
// ops ((fp32(u8) - fp32(mean)*255) / (fp32(std)*255), or the unfused variants when do_rescale or
// do_normalize is off) gives the same bits as running those ops on the whole image.
struct PixelTable {
  std::array<float, 3 * 256> values{};  // [channel][level]
};

// Throws qwenvl::Error when the mean or std does not have 3 entries, or std has a zero.
PixelTable make_pixel_table(const ProcessorConfig& config);

}  // namespace qwenvl::model
