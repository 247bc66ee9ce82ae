// Image and video preprocessing straight from the caller's frames (any pixel format) through
// kernels/frame_preparation: conversion to RGB, resample, rescale + normalise and patchify on the
// device that is to run the vision tower. Gives the same VisionInput, bit for bit, as
// convert_to_rgb followed by preprocess_image / preprocess_video (the CPU path, which stays the
// reference), with pixel_values on `device`. The frames go to a CUDA device in one copy.
// On the CPU the kernels' reference path runs (its tests hold it to the CPU processors).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "model/config.h"
#include "preprocessing/frame_convert.h"
#include "preprocessing/video_processor.h"
#include "preprocessing/vision_input.h"

namespace qwenvl::model {

// As preprocess_image(convert_to_rgb(frame), ...). Throws qwenvl::Error as it does.
VisionInput preprocess_image_on_device(const OwnedFrame& frame, const ProcessorConfig& config,
                                       std::optional<int64_t> min_pixels, std::optional<int64_t> max_pixels,
                                       const at::Device& device);

// As preprocess_video(convert_to_rgb of every frame, ...). Throws qwenvl::Error as it does.
VisionInput preprocess_video_on_device(const std::vector<OwnedFrame>& frames, const ProcessorConfig& config,
                                       const VideoOptions& options, const at::Device& device);

}  // namespace qwenvl::model
