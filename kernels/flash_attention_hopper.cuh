// Flash attention forward on Hopper (sm_90a): the tensor-core work goes through warpgroup MMA
// (wgmma) straight from shared memory, which mma.sync cannot do: no ldmatrix traffic for K and V,
// and 64xN tiles per instruction. Each CTA owns 128 query rows of one head of one segment, split
// between two warpgroups of 64 rows; K/V tiles of 128 keys stream through shared memory with
// cp.async in three stages, in the swizzled layouts wgmma's descriptors describe. S = Q Kᵀ reads Q
// and K from shared memory; O += P V takes P from registers (the S accumulators, rounded to 16 bits)
// and V from shared memory, N-major. Each warpgroup overlaps the softmax of one tile with the P V
// of the tile before. The softmax is online in fp32 (exp2 domain); the score matrix never leaves
// registers. Same contract as flash_attention_kernel.cuh, for contiguous K/V.
#pragma once

#include <cfloat>

#include "kernels/cuda_utils.cuh"
#include "kernels/flash_attention_params.h"
#include "kernels/flash_attention_tile.cuh"
#include "kernels/wgmma.cuh"

namespace qwenvl::kernels::flash_hopper {

using flash::Params;

template <typename Element_, int HeadDim>
struct Traits {
  using Element = Element_;
  static_assert(HeadDim % 16 == 0, "head_dim must be a multiple of 16");
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kWarpGroups = 2;
  static constexpr int kThreads = 128 * kWarpGroups;
  static constexpr int kBlockM = 64 * kWarpGroups;
  static constexpr int kBlockN = 128;
  // Shared tiles are column blocks of rows of kSwizzleBytes (128 B when the head dim allows it, 32 B
  // for head dim 80), 16-byte chunks XOR-swizzled by row: conflict-free and what wgmma reads.
  static constexpr int kSwizzleBytes = HeadDim % 64 == 0 ? 128 : 32;
  static constexpr wgmma::Swizzle kSwizzle = kSwizzleBytes == 128 ? wgmma::Swizzle::k128B : wgmma::Swizzle::k32B;
  static constexpr int kSwizzleMask = kSwizzleBytes / 16 - 1;  // row bits folded into the chunk index
  static constexpr int kBlockCols = kSwizzleBytes / 2;         // elements per column block
  static constexpr int kChunks = HeadDim / 8;                  // 16-byte chunks per row
  static constexpr int kQBytes = kBlockM * HeadDim * 2;
  static constexpr int kKVBytes = kBlockN * HeadDim * 2;
  static constexpr int kSmemBytes = kQBytes + 6 * kKVBytes + 1024;  // Q, 3 x (K, V), alignment slack
};

// Byte offset of element (r, c) in a tile of `rows` rows laid out as T describes.
template <typename T>
__device__ __forceinline__ int tile_offset(int rows, int r, int c) {
  const int off = (c / T::kBlockCols) * rows * T::kSwizzleBytes + r * T::kSwizzleBytes + (c % T::kBlockCols) * 2;
  return off ^ (((off >> 7) & T::kSwizzleMask) << 4);
}

template <typename T>
__global__ void __launch_bounds__(T::kThreads, 1) flash_fwd_hopper_kernel(const Params p) {
  using E = typename T::Element;
  constexpr int D = T::kHeadDim, BM = T::kBlockM, BN = T::kBlockN, W = T::kSwizzleBytes;
  extern __shared__ unsigned char smem_raw[];
  // Swizzle patterns repeat every 1024 bytes and descriptors assume they start aligned.
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  unsigned char* sQ = smem;
  unsigned char* sK = sQ + T::kQBytes;       // three stages
  unsigned char* sV = sK + 3 * T::kKVBytes;  // three stages

  // Causal tiles further down cost more: start them first so the last wave is short.
  const int m_block = p.causal ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x);
  const int head = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, wg = tid / 128, lane = tid % 32, warp_in_wg = (tid % 128) / 32;
  const int q_start = p.cu_seqlens_q[b];
  const int len_q = p.cu_seqlens_q[b + 1] - q_start;
  const int m0 = m_block * BM;
  if (m0 >= len_q) return;
  const int k_start = p.cu_seqlens_k[b];
  const int len_k = p.cu_seqlens_k[b + 1] - k_start;
  const int kv_head = head / (p.num_heads / p.num_kv_heads);
  const int diag = len_k - len_q;  // causal: query i sees keys j <= i + diag

  const E* q_base = static_cast<const E*>(p.q) + int64_t(q_start) * p.q_row_stride + int64_t(head) * p.q_head_stride;
  const E* k_base = static_cast<const E*>(p.k) + int64_t(kv_head) * p.k_head_stride;
  const E* v_base = static_cast<const E*>(p.v) + int64_t(kv_head) * p.v_head_stride;
  E* o_base = static_cast<E*>(p.o) + int64_t(q_start) * p.o_row_stride + int64_t(head) * p.o_head_stride;

  const int n_blocks = flash::visible_key_blocks(p, len_k, m0, BM, BN, diag);
  if (n_blocks == 0) {
    flash::write_zero_tile<E, BM, T::kChunks, T::kThreads>(o_base, p.o_row_stride, m0, len_q, tid);
    return;
  }

  auto load_kv = [&](int nb, int stage) {
    unsigned char* k_tile = sK + stage * T::kKVBytes;
    unsigned char* v_tile = sV + stage * T::kKVBytes;
    if constexpr (T::kThreads % T::kChunks == 0) {
      // Each thread keeps one 16-byte column and walks rows kRowStep apart: its shared-memory
      // offsets step by a constant (the swizzle depends on the row mod 8 alone) and its global
      // pointers by a fixed number of rows, so the loop is a few adds per copy.
      constexpr int kRowStep = T::kThreads / T::kChunks;
      static_assert(kRowStep % 8 == 0, "rows must keep their swizzle phase");
      const int r0 = tid / T::kChunks, c = (tid % T::kChunks) * 8;
      const int off0 = tile_offset<T>(BN, r0, c);
      const int j0 = nb * BN + r0;
      const E* k_src = k_base + int64_t(k_start + j0) * p.k_row_stride + c;
      const E* v_src = v_base + int64_t(k_start + j0) * p.v_row_stride + c;
#pragma unroll
      for (int step = 0; step < BN / kRowStep; ++step) {
        const bool ok = j0 + step * kRowStep < len_k;
        const int off = off0 + step * kRowStep * T::kSwizzleBytes;
        // Rows past the segment are zero-filled: masked scores times stale V could make NaN.
        cu::cp_async_16(k_tile + off, ok ? k_src : k_base, ok);
        cu::cp_async_16(v_tile + off, ok ? v_src : v_base, ok);
        k_src += kRowStep * p.k_row_stride;
        v_src += kRowStep * p.v_row_stride;
      }
    } else {
      for (int i = tid; i < BN * T::kChunks; i += T::kThreads) {
        const int r = i / T::kChunks, c = (i % T::kChunks) * 8;
        const int j = nb * BN + r;
        const bool ok = j < len_k;
        const int64_t row = ok ? int64_t(k_start + j) : 0;
        const int off = tile_offset<T>(BN, r, c);
        cu::cp_async_16(k_tile + off, ok ? k_base + row * p.k_row_stride + c : k_base, ok);
        cu::cp_async_16(v_tile + off, ok ? v_base + row * p.v_row_stride + c : v_base, ok);
      }
    }
  };

  for (int i = tid; i < BM * T::kChunks; i += T::kThreads) {
    const int r = i / T::kChunks, c = (i % T::kChunks) * 8;
    const bool ok = m0 + r < len_q;
    cu::cp_async_16(sQ + tile_offset<T>(BM, r, c), ok ? q_base + int64_t(m0 + r) * p.q_row_stride + c : q_base, ok);
  }
  load_kv(0, 0);
  cu::cp_async_commit();
  if (n_blocks > 1) {
    load_kv(1, 1);
    cu::cp_async_commit();
    cu::cp_async_wait<1>();  // Q and tile 0
  } else {
    cu::cp_async_wait<0>();
  }
  wgmma::fence_shared_for_async_proxy();
  __syncthreads();

  // This thread's rows (accumulator layout, wgmma.cuh): g and g + 8 of its warp's 16.
  const int g = lane / 4, tig = lane % 4;
  const int wg_row = wg * 64;                         // the warpgroup's first row within the tile
  const int row0 = m0 + wg_row + warp_in_wg * 16 + g;  // query index within the segment
  const int wg_last_row = m0 + wg_row + 63;
  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};

  // Descriptors. Q and K are K-major (the head dim is the reduction): 8-row groups 8·W apart,
  // 16-element steps either inside a 128-byte row or one 32-byte column block further.
  auto k_major_step = [&](int rows, int kk) { return (kk * 16 / T::kBlockCols) * rows * W + (kk * 16 % T::kBlockCols) * 2; };
  const unsigned char* q_wg = sQ + wg_row * W;

  // Software pipeline inside each warpgroup: while the softmax of tile n runs on the CUDA cores,
  // the tensor cores work on P(n-1) V(n-1). Tile t lives in stage t % 3: at iteration n, K(n) and
  // V(n-1) are read while tile n + 1 arrives; tile n + 2 is fetched once every warpgroup is done
  // with V(n-1), whose stage it takes.
  uint32_t pa[BN / 16][4];  // P of the previous tile, rounded to 16 bits, waiting for its V
  float s[BN / 2];           // this tile's scores, then its probabilities
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) s[i] = 0.f;  // defined before the first wgmma names them

  auto issue_s = [&](int tile) {  // S = Q Kᵀ: 64 rows x 128 keys per warpgroup
    const unsigned char* k_tile = sK + (tile % 3) * T::kKVBytes;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {  // the first step overwrites S: nothing to zero first
      const uint64_t da = wgmma::descriptor(q_wg + k_major_step(BM, kk), 16, 8 * W, T::kSwizzle);
      const uint64_t db = wgmma::descriptor(k_tile + k_major_step(BN, kk), 16, 8 * W, T::kSwizzle);
      wgmma::mma_ss<BN, E>(s, da, db, kk > 0);
    }
    wgmma::commit_group();
  };
  auto issue_pv = [&](int tile) {  // O += P V
    const unsigned char* v_tile = sV + (tile % 3) * T::kKVBytes;
#pragma unroll
    for (int kc = 0; kc < BN / 16; ++kc) {
      // V is N-major (the head dim is N): column blocks BN·W apart, 8-key groups 8·W apart.
      const uint64_t dv = wgmma::descriptor(v_tile + kc * 16 * W, BN * W, 8 * W, T::kSwizzle);
      wgmma::mma_rs_nmajor<D, E>(o, pa[kc], dv, 1);
    }
    wgmma::commit_group();
  };
  // Masks S, turns it into probabilities against the running row maxima and returns each row's
  // correction factor for O. Maxima are taken on the raw scores (the scale is positive); the scale
  // is folded into one FFMA before the exp2.
  auto softmax = [&](int tile, float (&corr)[2]) {
    const int key0 = tile * BN;
    const bool need_mask = key0 + BN > len_k || (p.causal && key0 + BN - 1 > m0 + wg_row + diag);
    if (need_mask) {
#pragma unroll
      for (int t = 0; t < BN / 8; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = key0 + t * 8 + tig * 2 + (e & 1);
          const int i = row0 + (e >> 1) * 8;
          if (j >= len_k || (p.causal && j > i + diag)) s[4 * t + e] = -INFINITY;
        }
      }
    }
    const float scale = p.scale_log2;
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // rows are shared by the 4 threads of a quad
      float mx = row_max[r];
#pragma unroll
      for (int t = 0; t < BN / 8; ++t) mx = fmaxf(mx, fmaxf(s[4 * t + 2 * r], s[4 * t + 2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float ref = mx == -INFINITY ? 0.f : mx * scale;  // a row that has seen no key yet stays at zero
      corr[r] = cu::fast_exp2(row_max[r] * scale - ref);
      row_max[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int t = 0; t < BN / 8; ++t) {
        s[4 * t + 2 * r] = cu::fast_exp2(fmaf(s[4 * t + 2 * r], scale, -ref));
        s[4 * t + 2 * r + 1] = cu::fast_exp2(fmaf(s[4 * t + 2 * r + 1], scale, -ref));
        sum += s[4 * t + 2 * r] + s[4 * t + 2 * r + 1];
      }
      row_sum[r] = row_sum[r] * corr[r] + sum;
    }
  };
  auto rescale_o_and_pack_p = [&](const float (&corr)[2]) {
#pragma unroll
    for (int t = 0; t < D / 8; ++t) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        o[4 * t + 2 * r] *= corr[r];
        o[4 * t + 2 * r + 1] *= corr[r];
      }
    }
#pragma unroll
    for (int kc = 0; kc < BN / 16; ++kc) {  // two n8 accumulator blocks are one 16-key A fragment
      pa[kc][0] = cu::Elem<E>::pack(s[8 * kc + 0], s[8 * kc + 1]);
      pa[kc][1] = cu::Elem<E>::pack(s[8 * kc + 2], s[8 * kc + 3]);
      pa[kc][2] = cu::Elem<E>::pack(s[8 * kc + 4], s[8 * kc + 5]);
      pa[kc][3] = cu::Elem<E>::pack(s[8 * kc + 6], s[8 * kc + 7]);
    }
  };
  // Tile nb + 1 has landed and every warpgroup is done with V(nb - 1): fetch tile nb + 2 into its stage.
  auto next_tile = [&](int nb) {
    if (nb + 1 >= n_blocks) return;
    cu::cp_async_wait<0>();
    wgmma::fence_shared_for_async_proxy();
    __syncthreads();
    if (nb + 2 < n_blocks) {
      load_kv(nb + 2, (nb + 2) % 3);
      cu::cp_async_commit();
    }
  };

  // Tiles this warpgroup computes: when causal, those left of its last row's diagonal.
  int wg_tiles = n_blocks;
  if (p.causal) wg_tiles = max(0, min(n_blocks, (wg_last_row + diag + 1 + BN - 1) / BN));
  int nb = 0;
  if (wg_tiles > 0) {
    float corr[2];
    wgmma::fence();
    issue_s(0);
    wgmma::wait_group<0>();
    wgmma::pin(s);
    softmax(0, corr);
    rescale_o_and_pack_p(corr);
    next_tile(0);
    for (nb = 1; nb < wg_tiles; ++nb) {
      wgmma::pin(o);
      wgmma::fence();
      issue_s(nb);
      issue_pv(nb - 1);
      wgmma::wait_group<1>();  // S is ready; P V runs on while the softmax does
      wgmma::pin(s);
      softmax(nb, corr);
      wgmma::wait_group<0>();  // O is final for tile nb - 1: rescale it, and pa may be overwritten
      wgmma::pin(o);
      rescale_o_and_pack_p(corr);
      next_tile(nb);
    }
    wgmma::pin(o);
    wgmma::fence();
    issue_pv(wg_tiles - 1);
    wgmma::wait_group<0>();
    wgmma::pin(o);
  }
  for (; nb < n_blocks; ++nb) next_tile(nb);  // the other warpgroup's tiles: take part in the barriers

  // Normalise and store: each quad writes 16 contiguous bytes of a row per n8 block.
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    inv[r] = l > 0.f ? 1.f / l : 0.f;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    if (row >= len_q) continue;
    E* out = o_base + int64_t(row) * p.o_row_stride;
#pragma unroll
    for (int t = 0; t < D / 8; ++t)
      *reinterpret_cast<uint32_t*>(out + t * 8 + tig * 2) =
          cu::Elem<E>::pack(o[4 * t + 2 * r] * inv[r], o[4 * t + 2 * r + 1] * inv[r]);
  }
}

template <typename E, int HeadDim>
void launch_flash_fwd_hopper(const Params& p, cudaStream_t stream) {
  using T = Traits<E, HeadDim>;
  flash::launch_over_query_tiles<T>(flash_fwd_hopper_kernel<T>, p, stream);
}

}  // namespace qwenvl::kernels::flash_hopper
