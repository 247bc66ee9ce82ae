// What both flash attention kernels (flash_attention_kernel.cuh, flash_attention_hopper.cuh) do the
// same way: how many key blocks some row of a CTA's tile of query rows sees, the zeros a tile writes
// when none does, and the launch over the tiles.
#pragma once

#include <cstdint>

#include "kernels/cuda_utils.cuh"
#include "kernels/flash_attention_params.h"

namespace qwenvl::kernels::flash {

// Key blocks of `block_n` keys that some row of the tile [m0, m0 + block_m) sees: all of them, or
// when causal those up to the last row's diagonal (query i sees keys j <= i + diag).
__device__ __forceinline__ int visible_key_blocks(const Params& p, int len_k, int m0, int block_m, int block_n,
                                                  int diag) {
  int n_end = len_k;
  if (p.causal) n_end = min(len_k, m0 + block_m + diag);
  return n_end > 0 ? (n_end + block_n - 1) / block_n : 0;
}

// A tile whose rows see no key: zeros, as FlashAttention writes them (16 bytes per thread per step).
template <typename E, int BlockM, int Chunks, int Threads>
__device__ __forceinline__ void write_zero_tile(E* o_base, int64_t o_row_stride, int m0, int len_q, int tid) {
  for (int i = tid; i < BlockM * Chunks; i += Threads) {
    const int r = i / Chunks, c = i % Chunks;
    if (m0 + r < len_q) *reinterpret_cast<uint4*>(o_base + int64_t(m0 + r) * o_row_stride + c * 8) = make_uint4(0, 0, 0, 0);
  }
}

template <typename T>
unsigned query_tiles(const Params& p) {
  return p.max_seqlen_q > 0 ? static_cast<unsigned>((p.max_seqlen_q + T::kBlockM - 1) / T::kBlockM) : 0u;
}

// One CTA of T::kThreads per (tile of T::kBlockM query rows, head, segment), T::kSmemBytes of
// dynamic shared memory (more than 48 KB needs an opt-in, per device: set at every launch). The
// kernel takes `args` (p itself, or p with what else the kernel reads).
template <typename T, typename Kernel, typename KernelArgs>
void launch_over_query_tiles(Kernel kernel, const Params& p, cudaStream_t stream, const KernelArgs& args) {
  cu::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes),
                 "flash_attention", "cannot raise the kernel's shared-memory limit");
  const dim3 grid(query_tiles<T>(p), p.num_heads, p.batch);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(args);
  cu::check_launch("flash_attention");
}

}  // namespace qwenvl::kernels::flash
