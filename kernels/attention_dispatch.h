// Which attention cases the CUDA kernels take. Other cases on CUDA tensors (fp32, a head_dim with
// no instantiation, too many query heads per kv head for the decode kernel) run the libtorch
// reference on the device and are counted as such (dispatch_counts.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace qwenvl::kernels::detail {

constexpr int64_t kDecodeMaxGroup = 16;  // paged_decode_attention.cu's kMaxGroup

inline bool cuda_attention_takes(const at::Tensor& q, int64_t num_kv_heads, bool decode) {
  const auto t = q.scalar_type();
  if (t != at::kBFloat16 && t != at::kHalf) return false;
  if (q.size(2) != 80 && q.size(2) != 128) return false;
  return !decode || q.size(1) / num_kv_heads <= kDecodeMaxGroup;
}

}  // namespace qwenvl::kernels::detail
