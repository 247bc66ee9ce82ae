// Image preprocessing as the processor that transformers 5.17 AutoProcessor returns for
// Qwen2.5-VL does it (Qwen2VLImageProcessor, torchvision backend, CPU): smart resize, uint8
// antialiased bicubic resample, fused fp32 rescale + normalize, patchify (image_processing_qwen2_vl.py,
// Qwen2VLImageProcessor._preprocess), from a frame in any pixel format of qwenvl/engine.h (converted
// to RGB as videoconvert converts it), on the CPU or a CUDA device (frames_to_pixel_values).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>

#include "model/config.h"
#include "preprocessing/owned_frame.h"
#include "preprocessing/vision_input.h"

namespace qwenvl::model {

// min_pixels / max_pixels override the config's for this request, each on its own. (transformers
// 5.17's processor call honours min_pixels/max_pixels only when both are passed and ignores a
// lone one; its `size={shortest_edge, longest_edge}` argument is what this override matches.)
// pixel_values end on `device`. Throws qwenvl::Error for an aspect ratio above 200, a resample
// other than bicubic or an inconsistent config.
VisionInput preprocess_image(const OwnedFrame& frame, const ProcessorConfig& config, std::optional<int64_t> min_pixels,
                             std::optional<int64_t> max_pixels, const at::Device& device);

// The {height, width} preprocess_image resamples a height x width image to (its own size when
// do_resize is off). Throws as preprocess_image does for the resample and the smart resize.
std::pair<int64_t, int64_t> image_target_size(int64_t height, int64_t width, const ProcessorConfig& config,
                                              std::optional<int64_t> min_pixels = {},
                                              std::optional<int64_t> max_pixels = {});

}  // namespace qwenvl::model
