// Attention entry points and the paged KV-cache layout. The CPU reference (libtorch ops) and the
// CUDA kernels implement the same functions; each call dispatches on the device of its tensors.
// Kernels know nothing of the model: shapes are heads x head_dim, sequences are cu_seqlens.
//
// Paged KV cache (one pair per layer):
//   k_cache, v_cache  [num_blocks, block_size, num_kv_heads, head_dim], contiguous, model dtype.
//   Token t of a sequence lives in block block_tables[s][t / block_size], row t % block_size.
//   block_size is a multiple of 16 (the engine uses 64).
//   block_tables      int32 [num_seqs, max_blocks_per_seq]; entries past a sequence's length are
//                     ignored (any value). Blocks need not be contiguous, ordered or unique across
//                     time (freed blocks are reused).
//   seq_lens          int32 [num_seqs]: tokens in the cache for each sequence, new ones included.
//   slot_mapping      int64 [num_tokens]: slot = block * block_size + row; a negative slot skips
//                     that token (padding).
// Activations are token-major: q [tokens, num_heads, head_dim], k/v [tokens, num_kv_heads,
// head_dim]; num_heads is a multiple of num_kv_heads (GQA: query head h reads kv head
// h / (num_heads / num_kv_heads)). Outputs are [tokens, num_heads, head_dim] in q's dtype.
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::kernels {

// Writes each token's key and value rows into its slot of the paged cache.
void write_kv_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache,
                    at::Tensor& v_cache, const at::Tensor& slot_mapping);

// Variable-length attention over packed sequences (the vision tower's window and full attention,
// the language model's prefill). Segment b is q[cu_seqlens_q[b] : cu_seqlens_q[b+1]] against
// k/v[cu_seqlens_k[b] : cu_seqlens_k[b+1]]. Causal masks bottom-right aligned, as FlashAttention:
// query i of a segment (lengths Lq, Lk) sees keys j <= i + Lk - Lq. The score matrix is never
// materialised on the GPU path.
at::Tensor flash_attention_varlen(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                                  int64_t max_seqlen_q, int64_t max_seqlen_k, double scale,
                                  bool causal);

// Prefill that continues a cached prefix: segment b's queries (the last Lq_b tokens of sequence b,
// already written to the cache) attend causally, bottom-right aligned, to all seq_lens[b] cached
// tokens of that sequence.
at::Tensor paged_prefill_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                   const at::Tensor& v_cache, const at::Tensor& cu_seqlens_q,
                                   const at::Tensor& block_tables, const at::Tensor& seq_lens,
                                   int64_t max_seqlen_q, double scale);

// Decode: one query token per sequence (q [num_seqs, num_heads, head_dim]) against its whole
// cache. The GPU kernel splits long contexts over the KV length and merges the partial softmaxes.
at::Tensor paged_decode_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                  const at::Tensor& v_cache, const at::Tensor& block_tables,
                                  const at::Tensor& seq_lens, int64_t max_seq_len, double scale);

// Whether paged_decode_attention on CUDA tensors of this dtype and shape runs the CUDA kernel
// (bf16/fp16, head_dim 80 or 128, up to 16 query heads per kv head) rather than the libtorch
// reference, whose host reads of the lengths cannot be recorded into a device graph.
bool paged_decode_has_cuda_kernel(at::ScalarType dtype, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim);

// The same three operations writing into a caller's output (shape and dtype of q, on q's device):
// CUDA graphs replay into fixed buffers, and the kernel tests poison the output before each run.
void flash_attention_varlen_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                                int64_t max_seqlen_q, int64_t max_seqlen_k, double scale,
                                bool causal, at::Tensor& out);
void paged_prefill_attention_out(const at::Tensor& q, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& cu_seqlens_q,
                                 const at::Tensor& block_tables, const at::Tensor& seq_lens,
                                 int64_t max_seqlen_q, double scale, at::Tensor& out);
void paged_decode_attention_out(const at::Tensor& q, const at::Tensor& k_cache,
                                const at::Tensor& v_cache, const at::Tensor& block_tables,
                                const at::Tensor& seq_lens, int64_t max_seq_len, double scale,
                                at::Tensor& out);

}  // namespace qwenvl::kernels
