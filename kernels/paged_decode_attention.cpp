// paged_decode_attention: entry point, argument checks and the CPU reference path.
#include "kernels/attention.h"
#include "kernels/attention_reference.h"
#include "kernels/attention_dispatch.h"
#include "kernels/check.h"
#include "kernels/paged_checks.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {
constexpr const char* kOp = "paged_decode_attention";
}

void paged_decode_attention_out(const at::Tensor& q, const at::Tensor& k_cache,
                                const at::Tensor& v_cache, const at::Tensor& block_tables,
                                const at::Tensor& seq_lens, int64_t max_seq_len, double scale,
                                at::Tensor& out) {
  detail::check_paged_args(kOp, q, k_cache, v_cache, block_tables, seq_lens, out);
  if (q.size(0) != seq_lens.numel())
    detail::fail(kOp, "q has ", q.size(0), " tokens but there are ", seq_lens.numel(), " sequences (one query each)");
  if (detail::runs_cuda_attention(kOp, q, k_cache.size(2), /*decode=*/true)) {
#ifdef QWENVL_WITH_CUDA
    cuda::paged_decode_attention(q, k_cache, v_cache, block_tables, seq_lens, max_seq_len, scale, out);
#endif
    return;
  }
  static_cast<void>(max_seq_len);  // only the GPU split count is sized by it; the CPU reads the lengths
  const at::Tensor lens = seq_lens.to(at::kCPU);
  const int32_t* pl = lens.data_ptr<int32_t>();
  for (int64_t s = 0; s < lens.numel(); ++s) {
    const at::Tensor k = detail::gather_paged(k_cache, block_tables[s], pl[s]);
    const at::Tensor v = detail::gather_paged(v_cache, block_tables[s], pl[s]);
    detail::attention_segment_reference(q.slice(0, s, s + 1), k, v, scale, false, out.slice(0, s, s + 1));
  }
}

at::Tensor paged_decode_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                  const at::Tensor& v_cache, const at::Tensor& block_tables,
                                  const at::Tensor& seq_lens, int64_t max_seq_len, double scale) {
  at::Tensor out = at::empty(q.sizes(), q.options().memory_format(at::MemoryFormat::Contiguous));
  paged_decode_attention_out(q, k_cache, v_cache, block_tables, seq_lens, max_seq_len, scale, out);
  return out;
}

bool paged_decode_has_cuda_kernel(at::ScalarType dtype, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim) {
  return num_kv_heads > 0 && detail::cuda_attention_takes(dtype, num_heads, num_kv_heads, head_dim, /*decode=*/true);
}

}  // namespace qwenvl::kernels
