// What both flash attention kernels (flash_attention_kernel.cuh, flash_attention_hopper.cuh) do the
// same way: which query rows and keys a CTA owns, how many key blocks some row of its tile sees, the
// zeros a tile writes when none does, and the launch over the tiles.
#pragma once

#include <cstdint>

#include "kernels/cuda_utils.cuh"
#include "kernels/flash_attention_params.h"

namespace qwenvl::kernels::flash {

// A CTA's tile: block_m query rows from m0 of one head of one segment, and that segment's keys.
struct QueryTile {
  int head, segment, m0;
  int q_start, len_q;  // the segment's rows of q
  int k_start, len_k;  // its keys: rows of k, or (paged) tokens in the cache from 0
  int kv_head;
  int diag;  // causal: query i sees keys j <= i + diag
  __device__ bool past_the_queries() const { return m0 >= len_q; }  // a tile of the grid with nothing to do
};

// The tile of this CTA (grid: query tiles x heads x segments). Causal tiles further down cost more:
// they are started first, so the last wave is short.
template <int BlockM>
__device__ __forceinline__ QueryTile locate_query_tile(const Params& p) {
  QueryTile t;
  const int m_block = p.causal ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x);
  t.head = blockIdx.y;
  t.segment = blockIdx.z;
  t.m0 = m_block * BlockM;
  t.q_start = p.cu_seqlens_q[t.segment];
  t.len_q = p.cu_seqlens_q[t.segment + 1] - t.q_start;
  const bool paged = p.block_tables != nullptr;
  t.k_start = paged ? 0 : p.cu_seqlens_k[t.segment];
  t.len_k = paged ? p.seq_lens[t.segment] : p.cu_seqlens_k[t.segment + 1] - t.k_start;
  t.kv_head = t.head / (p.num_heads / p.num_kv_heads);
  t.diag = t.len_k - t.len_q;
  return t;
}

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

// The grid over (query tiles, heads, segments); nothing to launch when no tile has rows.
template <typename T>
dim3 query_tile_grid(const Params& p) {
  const unsigned tiles = p.max_seqlen_q > 0 ? static_cast<unsigned>((p.max_seqlen_q + T::kBlockM - 1) / T::kBlockM) : 0u;
  return dim3(tiles, p.num_heads > 0 ? p.num_heads : 0, p.batch > 0 ? p.batch : 0);
}
inline bool nothing_to_launch(const dim3& grid) { return grid.x == 0 || grid.y == 0 || grid.z == 0; }

// One CTA of T::kThreads per (tile of T::kBlockM query rows, head, segment), T::kSmemBytes of
// dynamic shared memory (more than 48 KB needs an opt-in, per device: set at every launch). The
// kernel takes `args` (p itself, or p with what else the kernel reads).
template <typename T, typename Kernel, typename KernelArgs>
void launch_over_query_tiles(Kernel kernel, const Params& p, cudaStream_t stream, const KernelArgs& args) {
  cu::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes),
                 "flash_attention", "cannot raise the kernel's shared-memory limit");
  const dim3 grid = query_tile_grid<T>(p);
  if (nothing_to_launch(grid)) return;
  kernel<<<grid, T::kThreads, T::kSmemBytes, stream>>>(args);
  cu::check_launch("flash_attention");
}

}  // namespace qwenvl::kernels::flash
