// The resampling step of transformers 5.17's torchvision-backed Qwen2-VL processors: torchvision
// 0.26 `resize(..., BICUBIC, antialias=True)` on a CPU uint8 tensor, which goes straight to ATen's
// native uint8 antialiased bicubic kernel and writes uint8 (torchvision 0.26 _geometry.py, _do_native_uint8_resize_on_cpu). Calling that same op
// is what makes our bytes identical to the reference.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "preprocessing/vision_input.h"

namespace qwenvl::model {

// A [1, 3, H, W] uint8 view of the image's memory (channels-last strides, no copy). `what` names
// the input in error messages. Throws qwenvl::Error for null data, an empty side or a row stride
// shorter than 3 * width.
at::Tensor rgb_image_tensor(const RgbImage& image, const std::string& what);

// Resizes a [N, 3, H, W] uint8 CPU tensor to height x width as torchvision does for bicubic
// antialias; returns the input itself when the size is unchanged (torchvision's short-circuit).
at::Tensor resize_bicubic_uint8(const at::Tensor& images, int64_t height, int64_t width);

}  // namespace qwenvl::model
