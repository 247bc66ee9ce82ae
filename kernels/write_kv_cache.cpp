// write_kv_cache: entry point, argument checks and the CPU reference path.
#include "kernels/attention.h"
#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#include "kernels/write_kv_cache.h"
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
  check_write_kv_cache_args(kOp, k, v, k_cache, v_cache, slot_mapping);
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
