// write_kv_cache on the GPU: one CTA per token copies its key and value rows (all kv heads) into
// the token's cache slot with 16-byte accesses. Negative slots (padding) are skipped.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "write_kv_cache";

// Strides in 16-byte chunks; a row of one head is row_chunks chunks.
__global__ void write_kv_cache_kernel(const uint4* __restrict__ k, const uint4* __restrict__ v,
                                      uint4* __restrict__ k_cache, uint4* __restrict__ v_cache,
                                      const int64_t* __restrict__ slot_mapping, int64_t k_token_stride,
                                      int64_t k_head_stride, int64_t v_token_stride,
                                      int64_t v_head_stride, int kv_heads, int row_chunks,
                                      int64_t num_slots) {
  const int64_t token = blockIdx.x;
  const int64_t slot = slot_mapping[token];
  if (slot < 0 || slot >= num_slots) return;
  const int chunks = kv_heads * row_chunks;
  uint4* kc = k_cache + slot * chunks;
  uint4* vc = v_cache + slot * chunks;
  for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
    const int h = i / row_chunks, c = i % row_chunks;
    kc[i] = k[token * k_token_stride + h * k_head_stride + c];
    vc[i] = v[token * v_token_stride + h * v_head_stride + c];
  }
}

bool chunk_aligned(const at::Tensor& t) {
  const int64_t es = t.element_size();
  return t.stride(2) == 1 && (t.stride(0) * es) % 16 == 0 && (t.stride(1) * es) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

}  // namespace

void write_kv_cache(const at::Tensor& k_in, const at::Tensor& v_in, at::Tensor& k_cache,
                    at::Tensor& v_cache, const at::Tensor& slot_mapping_in) {
  const int64_t es = k_in.element_size(), head_dim = k_in.size(2);
  if ((head_dim * es) % 16 != 0)
    detail::fail(kOp, "a head row of ", head_dim * es, " bytes is not a multiple of 16 bytes");
  const at::Tensor k = chunk_aligned(k_in) ? k_in : k_in.contiguous();
  const at::Tensor v = chunk_aligned(v_in) ? v_in : v_in.contiguous();
  const at::Tensor slots = slot_mapping_in.contiguous();
  if (k.size(0) == 0) return;
  const c10::cuda::CUDAGuard guard(k.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(k.device().index()).stream();
  const int64_t chunk = 16 / es;  // elements per 16-byte chunk
  write_kv_cache_kernel<<<static_cast<unsigned>(k.size(0)), 128, 0, stream>>>(
      static_cast<const uint4*>(k.data_ptr()), static_cast<const uint4*>(v.data_ptr()),
      static_cast<uint4*>(k_cache.data_ptr()), static_cast<uint4*>(v_cache.data_ptr()),
      slots.data_ptr<int64_t>(), k.stride(0) / chunk, k.stride(1) / chunk, v.stride(0) / chunk,
      v.stride(1) / chunk, static_cast<int>(k.size(1)), static_cast<int>(head_dim / chunk),
      k_cache.size(0) * k_cache.size(1));
  cu::check_launch(kOp);
}

}  // namespace qwenvl::kernels::cuda
