// The small layers both towers share, computed with transformers 5.17's op order (spec §6).
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::nn {

// RMSNorm: normalise in fp32, cast back to x's dtype, then multiply by the weight (two roundings
// in bf16, as the reference).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// down(act(gate(x)) * up(x)); act is SiLU. Biases are optional (the vision MLP has them).
at::Tensor gated_mlp(const at::Tensor& x, const at::Tensor& gate_w, const at::Tensor& gate_b,
                     const at::Tensor& up_w, const at::Tensor& up_b, const at::Tensor& down_w,
                     const at::Tensor& down_b);

}  // namespace qwenvl::nn
