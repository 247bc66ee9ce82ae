// The CUDA host launchers behind frame_preparation.h (kept apart from cuda_launchers.h, which the
// other ops share). Only frame_preparation.cpp includes this, in builds with CUDA; arguments arrive
// checked, outputs allocated on the inputs' device, and work goes to the current stream.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "kernels/frame_preparation_math.h"

namespace qwenvl::kernels::cuda {

// frames[i]'s planes point into device memory; rgb: uint8 [N, H, W, 3].
void frames_to_rgb(const std::vector<frame_math::FrameArgs>& frames, at::Tensor& rgb);

// in, out: uint8 [N, H, W, 3] contiguous, out holding the target size (at most one side differs
// from in's when called per pass; the launcher runs the passes that are needed).
void resize_bicubic_aa(const at::Tensor& in, at::Tensor& out);

// rgb: uint8 [N, H, W, 3]; table: float32 [768] on the device; out: float32 [rows, 3 * T * P * P].
void patchify_levels(const at::Tensor& rgb, const at::Tensor& table, int64_t patch, int64_t temporal,
                     int64_t merge, at::Tensor& out);

}  // namespace qwenvl::kernels::cuda
