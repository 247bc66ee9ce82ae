// Which attention cases the CUDA kernels take. Other cases on CUDA tensors (fp32, a head_dim with
// no instantiation, too many query heads per kv head for the decode kernel) run the libtorch
// reference on the device and are counted as such (dispatch_counts.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

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

}  // namespace qwenvl::kernels::detail
