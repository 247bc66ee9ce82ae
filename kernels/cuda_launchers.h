// The CUDA host launchers behind the entry points of attention.h and rms_norm.h. Only the .cpp
// entry points include this, and only in builds with CUDA (QWENVL_WITH_CUDA); arguments arrive
// checked for shape and device, and outputs allocated.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "kernels/sampling.h"

namespace qwenvl::kernels::cuda {

void write_kv_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache,
                    at::Tensor& v_cache, const at::Tensor& slot_mapping);

// Contiguous varlen K/V when block_tables is undefined; otherwise K/V are the paged caches and
// segment b's keys are the first seq_lens[b] tokens of block_tables[b].
void flash_attention_fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                         const at::Tensor& block_tables, const at::Tensor& seq_lens,
                         int64_t max_seqlen_q, double scale, bool causal, at::Tensor& out);

void paged_decode_attention(const at::Tensor& q, const at::Tensor& k_cache,
                            const at::Tensor& v_cache, const at::Tensor& block_tables,
                            const at::Tensor& seq_lens, int64_t max_seq_len, double scale,
                            at::Tensor& out);

// residual is updated in place when defined (out = rmsnorm(x + residual) * weight).
void rms_norm(const at::Tensor& x, const at::Tensor& residual, const at::Tensor& weight,
              double eps, at::Tensor& out);

// Rotary embeddings (rotary.h): q/k rotated into q_out/k_out, which may be q/k themselves. k may be
// undefined. inv_freq: fp32 CPU [n / 2]; sections empty selects the 2-D rotary.
void rotary(const at::Tensor& q, const at::Tensor& k, at::Tensor& q_out, at::Tensor& k_out,
            const at::Tensor& positions, const at::Tensor& inv_freq, const std::vector<int64_t>& sections);
// Multi-axis rotary of q and k in place whose launch also writes the rotated k rows and the v rows
// to their cache slots (write_kv_cache's layout and slot rules).
void rotary_and_write_kv(at::Tensor& q, at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                         const at::Tensor& inv_freq, const std::vector<int64_t>& sections, at::Tensor& k_cache,
                         at::Tensor& v_cache, const at::Tensor& slot_mapping);

// out [M, N] = x [M, K] · weightᵀ + bias (linear.h): M 1..8, x and weight contiguous, 16-byte aligned,
// K a multiple of 8, bf16/fp16; bias [N] contiguous or undefined; out contiguous.
void linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& out);

// out = silu(gate) * up (silu_and_mul.h); gate/up [..., I] with a contiguous last dimension.
void silu_and_mul(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out);

// Token selection (sampling.h): logits processed in place; seen ids flat with per-row start and
// length (int64, on the logits' device). Returns int64 [rows].
at::Tensor sample(at::Tensor& logits, const std::vector<RowSampling>& rows, const at::Tensor& seen_ids,
                  const at::Tensor& seen_start, const at::Tensor& seen_len);

}  // namespace qwenvl::kernels::cuda
