// The CPU reference of attention, from libtorch ops: softmax(q kᵀ · scale) v per segment, GQA by
// sharing each kv head among its query heads. fp32 math for bf16/fp16/fp32 inputs (float64 for
// float64), rounded once to the output's dtype. Device-agnostic: it also runs on CUDA tensors.
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::kernels::detail {

// q [Lq, H, D], k/v [Lk, Hkv, D]; writes out [Lq, H, D]. Causal is bottom-right aligned: query i
// sees keys j <= i + Lk - Lq; a query that sees no key gets zeros (as FlashAttention).
void attention_segment_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 double scale, bool causal, at::Tensor out);

// The first len tokens of one sequence from a paged cache [blocks, block_size, heads, dim],
// following its row of the block table: [len, heads, dim].
at::Tensor gather_paged(const at::Tensor& cache, const at::Tensor& block_table_row, int64_t len);

}  // namespace qwenvl::kernels::detail
