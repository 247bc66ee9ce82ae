// Video preprocessing as transformers 5.17's Qwen2VLVideoProcessor does it for frames already
// sampled (its default do_sample_frames=False): one smart resize for the clip, every frame
// resampled and normalised as an image, frames grouped by temporal_patch_size with an odd tail
// padded by repeating the last frame (video_processing_qwen2_vl.py, Qwen2VLVideoProcessor._preprocess).
// Frames in any pixel format of qwenvl/engine.h, on the CPU or a CUDA device (frames_to_pixel_values).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "model/config.h"
#include "preprocessing/owned_frame.h"
#include "preprocessing/vision_input.h"

namespace qwenvl::model {

struct VideoOptions {
  // Per-request overrides of the config's min / max pixels per frame (each on its own).
  std::optional<int64_t> min_pixels;
  std::optional<int64_t> max_pixels;
  // transformers' cap_pixels_per_frame (unset = false in 5.17): also bound each frame by an even
  // share of max_video_tokens' worth of pixels, floored at 1.05 * min_pixels.
  bool cap_pixels_per_frame = false;
  int64_t max_video_tokens = 128000;
};

// All frames must have one size (the formats may differ). pixel_values end on `device`. Throws
// qwenvl::Error for no frames, mismatched frame sizes, an aspect ratio above 200 or an unsupported
// config.
VisionInput preprocess_video(const std::vector<OwnedFrame>& frames, const ProcessorConfig& config,
                             const VideoOptions& options, const at::Device& device);

// The {height, width} preprocess_video resamples each of `frames` frames of height x width to (their
// own size when do_resize is off). Throws as preprocess_video does for the resample and the smart
// resize.
std::pair<int64_t, int64_t> video_target_size(int64_t height, int64_t width, int64_t frames,
                                              const ProcessorConfig& config, const VideoOptions& options = {});

}  // namespace qwenvl::model
