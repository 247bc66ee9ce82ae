// What the host launcher hands the flash attention kernel: plain pointers and strides (in
// elements), so that the per-instantiation .cu files need no ATen.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace qwenvl::kernels::flash {

struct Params {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  int64_t q_row_stride, q_head_stride;
  int64_t k_row_stride, k_head_stride;  // paged: the cache's slot and head strides
  int64_t v_row_stride, v_head_stride;
  int64_t o_row_stride, o_head_stride;
  int64_t q_rows, k_rows;  // rows of the packed q and (contiguous) k/v tensors, for TMA's bounds
  const int32_t* cu_seqlens_q;  // [batch + 1]
  const int32_t* cu_seqlens_k;  // [batch + 1]; null when paged
  const int32_t* block_tables;  // [batch, block_table_stride] when paged, else null
  int64_t block_table_stride;
  const int32_t* seq_lens;      // paged: keys per segment
  int block_size;
  int batch, num_heads, num_kv_heads, max_seqlen_q;
  float scale_log2;  // softmax scale times log2(e): the kernel works with exp2
  bool causal;
};

enum class Dtype { kBf16, kFp16 };

// One instantiation per (dtype, head_dim), each in its own .cu file.
template <Dtype D, int HeadDim>
void run_flash_fwd(const Params& p, cudaStream_t stream);

}  // namespace qwenvl::kernels::flash
