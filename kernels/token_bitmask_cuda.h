// The CUDA host launcher behind token_bitmask.h (kept apart from cuda_launchers.h, which the other
// ops share). Only token_bitmask.cpp includes this, in builds with CUDA; arguments arrive checked,
// and the work goes to the current stream.
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::kernels::cuda {

void apply_token_bitmask(at::Tensor& logits, const at::Tensor& bitmask, const at::Tensor& rows);

}  // namespace qwenvl::kernels::cuda
