// paged_prefill_attention: entry point, argument checks and the CPU reference path.
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
constexpr const char* kOp = "paged_prefill_attention";
}

void paged_prefill_attention_out(const at::Tensor& q, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& cu_seqlens_q,
                                 const at::Tensor& block_tables, const at::Tensor& seq_lens,
                                 int64_t max_seqlen_q, double scale, at::Tensor& out) {
  detail::check_paged_args(kOp, q, k_cache, v_cache, block_tables, seq_lens, out);
  detail::check_int32_vector(cu_seqlens_q, kOp, "cu_seqlens_q");
  detail::check_same_device(q, cu_seqlens_q, kOp, "cu_seqlens_q");
  if (cu_seqlens_q.numel() != seq_lens.numel() + 1)
    detail::fail(kOp, "cu_seqlens_q needs num_seqs+1 = ", seq_lens.numel() + 1, " entries, got ", cu_seqlens_q.numel());
  if (detail::runs_cuda_attention(kOp, q, k_cache.size(2), /*decode=*/false)) {
#ifdef QWENVL_WITH_CUDA
    cuda::flash_attention_fwd(q, k_cache, v_cache, cu_seqlens_q, at::Tensor(), block_tables,
                              seq_lens, max_seqlen_q, scale, /*causal=*/true, out);
#endif
    return;
  }
  static_cast<void>(max_seqlen_q);  // only the GPU grid is sized by it; the CPU reads the lengths
  const at::Tensor cq = cu_seqlens_q.to(at::kCPU), lens = seq_lens.to(at::kCPU);
  const int32_t* pq = cq.data_ptr<int32_t>();
  const int32_t* pl = lens.data_ptr<int32_t>();
  for (int64_t b = 0; b < lens.numel(); ++b) {
    const int64_t lq = pq[b + 1] - pq[b];
    if (lq < 0 || pq[b + 1] > q.size(0) || lq > pl[b])
      detail::fail(kOp, "sequence ", b, " has ", lq, " queries but ", pl[b],
                   " cached tokens (queries must be the last tokens of the cache)");
    const at::Tensor k = detail::gather_paged(k_cache, block_tables[b], pl[b]);
    const at::Tensor v = detail::gather_paged(v_cache, block_tables[b], pl[b]);
    detail::attention_segment_reference(q.slice(0, pq[b], pq[b + 1]), k, v, scale, true,
                                        out.slice(0, pq[b], pq[b + 1]));
  }
}

at::Tensor paged_prefill_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                   const at::Tensor& v_cache, const at::Tensor& cu_seqlens_q,
                                   const at::Tensor& block_tables, const at::Tensor& seq_lens,
                                   int64_t max_seqlen_q, double scale) {
  at::Tensor out = at::empty(q.sizes(), q.options().memory_format(at::MemoryFormat::Contiguous));
  paged_prefill_attention_out(q, k_cache, v_cache, cu_seqlens_q, block_tables, seq_lens,
                              max_seqlen_q, scale, out);
  return out;
}

}  // namespace qwenvl::kernels
