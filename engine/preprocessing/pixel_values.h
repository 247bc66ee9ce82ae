// The one path from owned frames to the vision tower's pixel values: every frame's planes packed
// into one byte buffer, sent to `device` in one copy, and kernels::prepare_frames there (conversion
// to RGB as videoconvert makes it, ATen's uint8 antialiased bicubic, the pixel table, patchify):
// its CPU reference on the CPU, our kernels on a CUDA device, the same bytes on both.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "kernels/frame_preparation.h"
#include "model/config.h"
#include "preprocessing/owned_frame.h"
#include "preprocessing/vision_input.h"

namespace qwenvl::model {

// The frames' planes one after another in `bytes` (1-D uint8 on the device), and where each lies.
struct PackedFrames {
  at::Tensor bytes;
  std::vector<kernels::FrameLayout> layouts;
};

// For a CUDA device the copy is queued on the current stream from pinned memory.
PackedFrames pack_frames(const std::vector<const OwnedFrame*>& frames, const at::Device& device);

// The frames (one image, or a clip's frames of one size) resampled to height x width and patchified
// by `config`, with pixel_values on `device`. Throws qwenvl::Error for a bad config or frames the
// kernels refuse.
VisionInput frames_to_pixel_values(const std::vector<const OwnedFrame*>& frames, const ProcessorConfig& config,
                                   int64_t height, int64_t width, const at::Device& device);

}  // namespace qwenvl::model
