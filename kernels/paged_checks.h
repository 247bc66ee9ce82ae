// Checks shared by the two paged attention entry points (the cache layout of attention.h).
#pragma once

#include "kernels/check.h"

namespace qwenvl::kernels::detail {

inline void check_paged_args(const char* op, const at::Tensor& q, const at::Tensor& k_cache,
                             const at::Tensor& v_cache, const at::Tensor& block_tables,
                             const at::Tensor& seq_lens, const at::Tensor& out) {
  check_dim(q, 3, op, "q");
  check_dim(k_cache, 4, op, "k_cache");
  if (k_cache.sizes() != v_cache.sizes())
    fail(op, "k_cache ", k_cache.sizes(), " and v_cache ", v_cache.sizes(), " differ in shape");
  if (!k_cache.is_contiguous() || !v_cache.is_contiguous()) fail(op, "the caches must be contiguous");
  if (k_cache.size(3) != q.size(2)) fail(op, "head_dim of q (", q.size(2), ") and the cache (", k_cache.size(3), ") differ");
  if (k_cache.size(2) == 0 || q.size(1) % k_cache.size(2) != 0)
    fail(op, "num_heads ", q.size(1), " is not a multiple of num_kv_heads ", k_cache.size(2));
  if (k_cache.size(1) % 16 != 0) fail(op, "block_size ", k_cache.size(1), " is not a multiple of 16");
  if (k_cache.scalar_type() != q.scalar_type() || v_cache.scalar_type() != q.scalar_type())
    fail(op, "q and the caches must share one dtype");
  if (block_tables.scalar_type() != at::kInt || block_tables.dim() != 2)
    fail(op, "block_tables must be a 2-d int32 tensor, got ", block_tables.scalar_type(), " ", block_tables.sizes());
  check_int32_vector(seq_lens, op, "seq_lens");
  if (block_tables.size(0) != seq_lens.numel())
    fail(op, "block_tables has ", block_tables.size(0), " rows for ", seq_lens.numel(), " sequences");
  for (const auto* t : {&k_cache, &v_cache, &block_tables, &seq_lens, &out}) check_same_device(q, *t, op, "an argument");
  if (out.sizes() != q.sizes() || out.scalar_type() != q.scalar_type())
    fail(op, "out must have q's shape ", q.sizes(), " and dtype ", q.scalar_type());
}

}  // namespace qwenvl::kernels::detail
