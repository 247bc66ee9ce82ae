// SwiGLU's gate: out = silu(gate) * up, rounded as libtorch does it in the activation dtype: silu
// computed in fp32 and rounded once, then the product rounded (bf16, fp16 or fp32). Rows are the
// leading dimensions; the last dimension of each input must be contiguous.
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::kernels {

// gate_up [..., 2 * I] as a fused projection writes it: the first I columns are the gate, the next
// I the up projection. Returns [..., I].
at::Tensor silu_and_mul(const at::Tensor& gate_up);
void silu_and_mul_out(const at::Tensor& gate_up, at::Tensor& out);

// gate and up as two tensors of one shape [..., I].
at::Tensor silu_and_mul(const at::Tensor& gate, const at::Tensor& up);
void silu_and_mul_out(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out);

}  // namespace qwenvl::kernels
