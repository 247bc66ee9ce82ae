// flash_attention_varlen: entry point, argument checks and the CPU reference path.
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_reference.h"
#include "kernels/attention_dispatch.h"
#include "kernels/check.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "flash_attention_varlen";

void check_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                const at::Tensor& cu_q, const at::Tensor& cu_k, const at::Tensor& out) {
  using namespace detail;
  check_dim(q, 3, kOp, "q");
  check_dim(k, 3, kOp, "k");
  check_dim(v, 3, kOp, "v");
  if (k.sizes() != v.sizes()) fail(kOp, "k ", k.sizes(), " and v ", v.sizes(), " differ in shape");
  if (k.size(2) != q.size(2)) fail(kOp, "head_dim of q (", q.size(2), ") and k (", k.size(2), ") differ");
  if (k.size(1) == 0 || q.size(1) % k.size(1) != 0)
    fail(kOp, "num_heads ", q.size(1), " is not a multiple of num_kv_heads ", k.size(1));
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type())
    fail(kOp, "q, k and v must share one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  check_int32_vector(cu_q, kOp, "cu_seqlens_q");
  check_int32_vector(cu_k, kOp, "cu_seqlens_k");
  if (cu_q.numel() != cu_k.numel() || cu_q.numel() < 1)
    fail(kOp, "cu_seqlens_q (", cu_q.numel(), ") and cu_seqlens_k (", cu_k.numel(), ") must have batch+1 entries");
  for (const auto* t : {&k, &v, &cu_q, &cu_k, &out}) check_same_device(q, *t, kOp, "an argument");
  if (out.sizes() != q.sizes() || out.scalar_type() != q.scalar_type())
    fail(kOp, "out must have q's shape ", q.sizes(), " and dtype ", q.scalar_type(), ", got ", out.sizes(), " ", out.scalar_type());
}

}  // namespace

void flash_attention_varlen_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                                int64_t max_seqlen_q, int64_t /*max_seqlen_k*/, double scale,
                                bool causal, at::Tensor& out) {
  check_args(q, k, v, cu_seqlens_q, cu_seqlens_k, out);
  if (detail::runs_cuda_attention(kOp, q, k.size(1), /*decode=*/false)) {
#ifdef QWENVL_WITH_CUDA
    cuda::flash_attention_fwd(q, k, v, cu_seqlens_q, cu_seqlens_k, at::Tensor(), at::Tensor(),
                              max_seqlen_q, scale, causal, out);
#endif
    return;
  }
  static_cast<void>(max_seqlen_q);  // only the GPU grid is sized by it; the CPU reads the lengths
  const at::Tensor cq = cu_seqlens_q.to(at::kCPU), ck = cu_seqlens_k.to(at::kCPU);
  const int32_t* pq = cq.data_ptr<int32_t>();
  const int32_t* pk = ck.data_ptr<int32_t>();
  for (int64_t b = 0; b + 1 < cq.numel(); ++b) {
    if (pq[b + 1] < pq[b] || pk[b + 1] < pk[b] || pq[b + 1] > q.size(0) || pk[b + 1] > k.size(0))
      detail::fail(kOp, "cu_seqlens of segment ", b, " are out of order or past the tensors' ends");
    detail::attention_segment_reference(q.slice(0, pq[b], pq[b + 1]), k.slice(0, pk[b], pk[b + 1]),
                                        v.slice(0, pk[b], pk[b + 1]), scale, causal,
                                        out.slice(0, pq[b], pq[b + 1]));
  }
}

at::Tensor flash_attention_varlen(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                                  int64_t max_seqlen_q, int64_t max_seqlen_k, double scale,
                                  bool causal) {
  at::Tensor out = at::empty(q.sizes(), q.options().memory_format(at::MemoryFormat::Contiguous));
  flash_attention_varlen_out(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                             scale, causal, out);
  return out;
}

}  // namespace qwenvl::kernels
