#include "kernels/dispatch_counts.h"

#include <atomic>

namespace qwenvl::kernels {
namespace {
std::atomic<uint64_t> g_counts[kNumKernelOps][kNumDispatchPaths];
}

const char* kernel_op_name(KernelOp op) {
  switch (op) {
    case KernelOp::kAttention: return "attention";
    case KernelOp::kWriteKvCache: return "write_kv_cache";
    case KernelOp::kRmsNorm: return "rms_norm";
    case KernelOp::kRotary: return "rotary";
    case KernelOp::kSiluAndMul: return "silu_and_mul";
    case KernelOp::kSample: return "sample";
    case KernelOp::kFramePreparation: return "frame_preparation";
    case KernelOp::kLinear: return "linear";
  }
  return "unknown";
}

DispatchCounts DispatchCounts::since(const DispatchCounts& earlier) const {
  DispatchCounts d;
  for (int o = 0; o < kNumKernelOps; ++o)
    for (int p = 0; p < kNumDispatchPaths; ++p) d.calls[o][p] = calls[o][p] - earlier.calls[o][p];
  return d;
}

DispatchCounts dispatch_counts() {
  DispatchCounts d;
  for (int o = 0; o < kNumKernelOps; ++o)
    for (int p = 0; p < kNumDispatchPaths; ++p) d.calls[o][p] = g_counts[o][p].load(std::memory_order_relaxed);
  return d;
}

bool built_with_cuda() {
#ifdef QWENVL_WITH_CUDA
  return true;
#else
  return false;
#endif
}

namespace detail {
void count_dispatch(KernelOp op, DispatchPath path) {
  g_counts[int(op)][int(path)].fetch_add(1, std::memory_order_relaxed);
}
}  // namespace detail

}  // namespace qwenvl::kernels
