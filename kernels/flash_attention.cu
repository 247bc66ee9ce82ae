// Host launcher of the flash attention kernel (flash_attention_kernel.cuh): checks what only the
// GPU path needs, fills the kernel's parameters and picks the (dtype, head_dim) instantiation.
// Serves flash_attention_varlen (contiguous K/V) and paged_prefill_attention (K/V from the cache).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/flash_attention_params.h"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "flash_attention";

// Rows must be 16-byte aligned for the kernel's vector copies and TMA, and each token's heads must
// lie within its row (what a tensor map of [rows, heads, dim] describes); views that are not get
// copied (a head-major tensor viewed token-major, for one).
at::Tensor aligned_rows(const at::Tensor& t) {
  const bool ok = t.stride(-1) == 1 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 &&
                  t.stride(1) >= t.size(2) && t.stride(0) >= t.size(1) * t.stride(1) &&
                  reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  return ok ? t : t.contiguous();
}

template <flash::Dtype Dt>
void run_head_dim(int64_t head_dim, const flash::Params& p, cudaStream_t stream) {
  switch (head_dim) {
    case 80: return flash::run_flash_fwd<Dt, 80>(p, stream);
    case 128: return flash::run_flash_fwd<Dt, 128>(p, stream);
    default: detail::fail(kOp, "head_dim ", head_dim, " has no CUDA kernel (80 and 128 have)");
  }
}

}  // namespace

void flash_attention_fwd(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                         const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                         const at::Tensor& block_tables_in, const at::Tensor& seq_lens,
                         int64_t max_seqlen_q, double scale, bool causal, at::Tensor& out) {
  const auto dtype = q_in.scalar_type();
  if (dtype != at::kBFloat16 && dtype != at::kHalf)
    detail::fail(kOp, "the CUDA kernel takes bf16 or fp16, got ", dtype);
  const bool paged = block_tables_in.defined();
  const at::Tensor q = aligned_rows(q_in);
  // The paged caches are contiguous (checked by the entry point): rows are slots.
  const at::Tensor k = paged ? k_in : aligned_rows(k_in);
  const at::Tensor v = paged ? v_in : aligned_rows(v_in);
  const bool out_ok = out.stride(-1) == 1 && out.stride(0) % 8 == 0 && out.stride(1) % 8 == 0 &&
                      reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0;
  at::Tensor o = out_ok ? out : at::empty(out.sizes(), out.options());
  const at::Tensor cu_q = cu_seqlens_q.contiguous();
  const at::Tensor cu_k = paged ? at::Tensor() : cu_seqlens_k.contiguous();
  const at::Tensor block_tables = paged ? block_tables_in.contiguous() : at::Tensor();
  const at::Tensor lens = paged ? seq_lens.contiguous() : at::Tensor();

  const c10::cuda::CUDAGuard guard(q.device());
  flash::Params p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = o.data_ptr();
  p.q_row_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.o_row_stride = o.stride(0);
  p.o_head_stride = o.stride(1);
  p.q_rows = q.size(0);
  p.k_rows = k.size(0);
  if (paged) {
    p.k_row_stride = k.size(2) * k.size(3);  // one slot: [num_kv_heads, head_dim]
    p.k_head_stride = k.size(3);
    p.v_row_stride = p.k_row_stride;
    p.v_head_stride = p.k_head_stride;
    p.num_kv_heads = static_cast<int>(k.size(2));
    p.block_tables = block_tables.data_ptr<int32_t>();
    p.block_table_stride = block_tables.size(1);
    p.seq_lens = lens.data_ptr<int32_t>();
    p.block_size = static_cast<int>(k.size(1));
  } else {
    p.k_row_stride = k.stride(0);
    p.k_head_stride = k.stride(1);
    p.v_row_stride = v.stride(0);
    p.v_head_stride = v.stride(1);
    p.num_kv_heads = static_cast<int>(k.size(1));
    p.cu_seqlens_k = cu_k.data_ptr<int32_t>();
  }
  p.cu_seqlens_q = cu_q.data_ptr<int32_t>();
  p.batch = static_cast<int>(cu_q.numel() - 1);
  p.num_heads = static_cast<int>(q.size(1));
  p.max_seqlen_q = static_cast<int>(max_seqlen_q);
  p.scale_log2 = static_cast<float>(scale * M_LOG2E);
  p.causal = causal;

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(q.device().index()).stream();
  if (dtype == at::kBFloat16)
    run_head_dim<flash::Dtype::kBf16>(q.size(2), p, stream);
  else
    run_head_dim<flash::Dtype::kFp16>(q.size(2), p, stream);
  if (!out_ok) out.copy_(o);
}

}  // namespace qwenvl::kernels::cuda
