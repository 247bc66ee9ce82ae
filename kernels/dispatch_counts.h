// Which implementation served each kernel call, counted per process: the CUDA kernel, the libtorch
// reference run on CUDA tensors (a case the kernel does not take: fp32 attention, a head_dim with
// no instantiation), or the reference on the CPU. A GPU test takes a snapshot before and after a
// forward and asserts that every call of an op went to its kernel, so that no silent fallback can
// hide behind a passing parity check.
#pragma once

#include <array>
#include <cstdint>

namespace qwenvl::kernels {

enum class KernelOp : int { kAttention, kWriteKvCache, kRmsNorm, kRotary, kSiluAndMul, kSample, kFramePreparation, kLinear };
constexpr int kNumKernelOps = 8;
enum class DispatchPath : int { kCudaKernel, kReferenceOnCuda, kCpuReference };
constexpr int kNumDispatchPaths = 3;

const char* kernel_op_name(KernelOp op);

struct DispatchCounts {
  std::array<std::array<uint64_t, kNumDispatchPaths>, kNumKernelOps> calls{};
  uint64_t operator()(KernelOp op, DispatchPath path) const { return calls[int(op)][int(path)]; }
  // The calls made since `earlier` (a snapshot taken before).
  DispatchCounts since(const DispatchCounts& earlier) const;
};

// A snapshot of the counters (thread-safe; counts only grow).
DispatchCounts dispatch_counts();

// True when this library was built with the CUDA kernels.
bool built_with_cuda();

namespace detail {
void count_dispatch(KernelOp op, DispatchPath path);
}  // namespace detail

}  // namespace qwenvl::kernels
