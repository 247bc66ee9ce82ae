// RMSNorm, alone and fused with the residual add before it, in Hugging Face's rounding order
// (transformers' Qwen2RMSNorm.forward): normalise in fp32, cast to the model dtype, then multiply by the weight in the model
// dtype. x, residual, weight and out share one dtype (bf16, fp16 or fp32); x is [..., hidden].
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::kernels {

// out = rmsnorm(x) * weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
void rms_norm_out(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& out);

// residual = x + residual (rounded to the model dtype, as the model's own add), then
// out = rmsnorm(residual) * weight. residual is updated in place and must be contiguous.
at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight,
                              double eps);
void fused_add_rms_norm_out(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight,
                            double eps, at::Tensor& out);

}  // namespace qwenvl::kernels
