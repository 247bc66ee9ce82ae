// write_kv_cache: entry point, argument checks and the CPU reference path.
#include "kernels/attention.h"
#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {
constexpr const char* kOp = "write_kv_cache";
}

void write_kv_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache,
                    at::Tensor& v_cache, const at::Tensor& slot_mapping) {
  using namespace detail;
  check_dim(k, 3, kOp, "k");
  check_dim(k_cache, 4, kOp, "k_cache");
  if (k.sizes() != v.sizes()) fail(kOp, "k ", k.sizes(), " and v ", v.sizes(), " differ in shape");
  if (k_cache.sizes() != v_cache.sizes())
    fail(kOp, "k_cache ", k_cache.sizes(), " and v_cache ", v_cache.sizes(), " differ in shape");
  if (!k_cache.is_contiguous() || !v_cache.is_contiguous()) fail(kOp, "the caches must be contiguous");
  if (k.size(1) != k_cache.size(2) || k.size(2) != k_cache.size(3))
    fail(kOp, "k rows ", k.sizes(), " do not fit cache rows [", k_cache.size(2), ", ", k_cache.size(3), "]");
  if (k.scalar_type() != k_cache.scalar_type() || v.scalar_type() != k_cache.scalar_type() ||
      v_cache.scalar_type() != k_cache.scalar_type())
    fail(kOp, "k, v and the caches must share one dtype");
  if (slot_mapping.scalar_type() != at::kLong || slot_mapping.dim() != 1 || slot_mapping.numel() != k.size(0))
    fail(kOp, "slot_mapping must be int64 with one entry per token (", k.size(0), "), got ",
         slot_mapping.scalar_type(), " ", slot_mapping.sizes());
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&v, &k_cache, &v_cache, &slot_mapping})
    check_same_device(k, *t, kOp, "an argument");
  detail::count_dispatch(KernelOp::kWriteKvCache, k.is_cuda() ? DispatchPath::kCudaKernel : DispatchPath::kCpuReference);
  if (k.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    cuda::write_kv_cache(k, v, k_cache, v_cache, slot_mapping);
    return;
#else
    fail_no_cuda(kOp);
#endif
  }
  const int64_t slots = k_cache.size(0) * k_cache.size(1);
  if (slot_mapping.numel() > 0 && slot_mapping.max().item<int64_t>() >= slots)
    fail(kOp, "slot ", slot_mapping.max().item<int64_t>(), " is past the cache's ", slots, " slots");
  const at::Tensor tokens = at::nonzero(slot_mapping >= 0).squeeze(1);
  const at::Tensor where = slot_mapping.index_select(0, tokens);
  k_cache.view({slots, k.size(1), k.size(2)}).index_copy_(0, where, k.index_select(0, tokens));
  v_cache.view({slots, v.size(1), v.size(2)}).index_copy_(0, where, v.index_select(0, tokens));
}

}  // namespace qwenvl::kernels
