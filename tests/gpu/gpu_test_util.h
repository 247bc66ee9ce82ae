// Shared by the GPU tests: whether a GPU is visible, and the kernel calls one network forward must
// make (kernels/dispatch_counts.h), so a test can prove that no op fell back to libtorch.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "kernels/dispatch_counts.h"
#include "model/config.h"

namespace qwenvl::test {

inline bool gpu_visible() { return at::hasCUDA() && at::getNumGPUs() > 0; }

#define QWENVL_SKIP_WITHOUT_GPU() \
  if (!::qwenvl::test::gpu_visible()) GTEST_SKIP() << "no CUDA device is visible: the GPU tests need one"

// Kernel calls of a run with `vision` vision forwards and `language` language-model forwards.
struct ExpectedCalls {
  uint64_t rms_norm = 0, rotary = 0, silu_and_mul = 0, attention = 0, write_kv_cache = 0;
};

inline ExpectedCalls expected_calls(const model::ModelConfig& c, int64_t vision, int64_t language) {
  const auto depth = static_cast<uint64_t>(c.vision.depth), layers = static_cast<uint64_t>(c.text.num_hidden_layers);
  ExpectedCalls e;
  // Vision: norm1 of block 0, then (norm2, next norm1 / the merger's ln_q) per block; language:
  // input norm of layer 0, then (post norm, next input norm / the final norm) per layer.
  e.rms_norm = vision * (2 * depth + 1) + language * (2 * layers + 1);
  e.rotary = vision * depth + language * layers;
  e.silu_and_mul = e.rotary;
  e.attention = e.rotary;
  e.write_kv_cache = language * layers;
  return e;
}

// Norm, rotary and SwiGLU went only through their CUDA kernels, exactly as often as the network has
// such layers; nothing ran on the CPU; attention went through the kernels (or, where
// `attention_on_reference`, through the libtorch reference on the device: fp32, odd head dims).
inline void expect_kernel_calls(const kernels::DispatchCounts& d, const ExpectedCalls& e, bool attention_on_reference,
                                const std::string& what) {
  using kernels::DispatchPath;
  using kernels::KernelOp;
  for (int op = 0; op < kernels::kNumKernelOps; ++op)
    EXPECT_EQ(d(KernelOp(op), DispatchPath::kCpuReference), 0u)
        << what << ": " << kernels::kernel_op_name(KernelOp(op)) << " ran on the CPU";
  const std::pair<KernelOp, uint64_t> kernel_ops[] = {{KernelOp::kRmsNorm, e.rms_norm},
                                                      {KernelOp::kRotary, e.rotary},
                                                      {KernelOp::kSiluAndMul, e.silu_and_mul},
                                                      {KernelOp::kWriteKvCache, e.write_kv_cache}};
  for (const auto& [op, n] : kernel_ops) {
    EXPECT_EQ(d(op, DispatchPath::kCudaKernel), n) << what << ": " << kernels::kernel_op_name(op);
    EXPECT_EQ(d(op, DispatchPath::kReferenceOnCuda), 0u) << what << ": " << kernels::kernel_op_name(op);
  }
  const DispatchPath served = attention_on_reference ? DispatchPath::kReferenceOnCuda : DispatchPath::kCudaKernel;
  const DispatchPath other = attention_on_reference ? DispatchPath::kCudaKernel : DispatchPath::kReferenceOnCuda;
  EXPECT_EQ(d(KernelOp::kAttention, served), e.attention) << what << ": attention";
  EXPECT_EQ(d(KernelOp::kAttention, other), 0u) << what << ": attention";
}

}  // namespace qwenvl::test
