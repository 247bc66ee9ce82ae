// Which attention cases the CUDA kernels take. Other cases on CUDA tensors (fp32, a head_dim with
// no instantiation, too many query heads per kv head for the decode kernel) run the libtorch
// reference on the device and are counted as such (dispatch_counts.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/check.h"
#include "kernels/dispatch_counts.h"

namespace qwenvl::kernels::detail {

constexpr int64_t kDecodeMaxGroup = 16;  // paged_decode_attention.cu's kMaxGroup

inline bool cuda_attention_takes(at::ScalarType t, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                                 bool decode) {
  if (t != at::kBFloat16 && t != at::kHalf) return false;
  if (head_dim != 80 && head_dim != 128) return false;
  return !decode || num_heads / num_kv_heads <= kDecodeMaxGroup;
}

inline bool cuda_attention_takes(const at::Tensor& q, int64_t num_kv_heads, bool decode) {
  return cuda_attention_takes(q.scalar_type(), q.size(1), num_kv_heads, q.size(2), decode);
}

// The one dispatch of the attention entry points: true when their CUDA kernel runs this call,
// false when their libtorch reference does; counts the path taken either way. A call the kernel
// would take, in a library built without CUDA, is an error naming `op`.
inline bool runs_cuda_attention(const char* op, const at::Tensor& q, int64_t num_kv_heads, bool decode) {
  if (q.is_cuda() && cuda_attention_takes(q, num_kv_heads, decode)) {
#ifdef QWENVL_WITH_CUDA
    static_cast<void>(op);
#else
    fail_no_cuda(op);
#endif
    count_dispatch(KernelOp::kAttention, DispatchPath::kCudaKernel);
    return true;
  }
  count_dispatch(KernelOp::kAttention, q.is_cuda() ? DispatchPath::kReferenceOnCuda : DispatchPath::kCpuReference);
  return false;
}

}  // namespace qwenvl::kernels::detail
