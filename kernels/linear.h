// The language model's projections at decode batch sizes: y = x · weightᵀ + bias, as at::linear.
// Decode reads every weight byte once per step for 1..8 rows of x, so the projection is a
// bandwidth-bound matrix-vector product; cuBLAS serves it at ~0.9 of copy bandwidth and, for the
// down projection, with a split-K kernel that adds a memset and a reduction kernel per layer.
// Our kernel reads each weight byte once in one launch. Everything else (the CPU, larger batches,
// fp32, rows off 16-byte vectors) is at::linear itself.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace qwenvl::kernels {

// The most rows of x (its numel / K) the CUDA kernel takes; more go to at::linear (cuBLAS).
constexpr int64_t kLinearMaxRows = 8;

// x [..., K], weight [N, K], bias [N] or undefined; returns [..., N], contiguous, in x's dtype.
// The CUDA kernel's result per element is the fp32 dot product plus the bias in fp32, rounded once
// to the dtype (cuBLAS's epilogue). It serves CUDA bf16/fp16 calls with 1..kLinearMaxRows rows,
// a contiguous weight, K a multiple of 8 and 16-byte aligned tensors; QWENVL_GEMV=0 in the
// environment (read once) sends every call to at::linear, for A/B measurement.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace qwenvl::kernels
