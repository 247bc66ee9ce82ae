// Argument checks of write_kv_cache (attention.h), shared with the fused rotary + cache write
// (rotary.h) so that both refuse the same arguments with the same words.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>

#include "kernels/check.h"

namespace qwenvl::kernels::detail {

inline void check_write_kv_cache_args(const char* op, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& k_cache, const at::Tensor& v_cache,
                                      const at::Tensor& slot_mapping) {
  check_dim(k, 3, op, "k");
  check_dim(k_cache, 4, op, "k_cache");
  if (k.sizes() != v.sizes()) fail(op, "k ", k.sizes(), " and v ", v.sizes(), " differ in shape");
  if (k_cache.sizes() != v_cache.sizes())
    fail(op, "k_cache ", k_cache.sizes(), " and v_cache ", v_cache.sizes(), " differ in shape");
  if (!k_cache.is_contiguous() || !v_cache.is_contiguous()) fail(op, "the caches must be contiguous");
  if (k.size(1) != k_cache.size(2) || k.size(2) != k_cache.size(3))
    fail(op, "k rows ", k.sizes(), " do not fit cache rows [", k_cache.size(2), ", ", k_cache.size(3), "]");
  if (k.scalar_type() != k_cache.scalar_type() || v.scalar_type() != k_cache.scalar_type() ||
      v_cache.scalar_type() != k_cache.scalar_type())
    fail(op, "k, v and the caches must share one dtype");
  if (slot_mapping.scalar_type() != at::kLong || slot_mapping.dim() != 1 || slot_mapping.numel() != k.size(0))
    fail(op, "slot_mapping must be int64 with one entry per token (", k.size(0), "), got ",
         slot_mapping.scalar_type(), " ", slot_mapping.sizes());
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&v, &k_cache, &v_cache, &slot_mapping})
    check_same_device(k, *t, op, "an argument");
}

}  // namespace qwenvl::kernels::detail
