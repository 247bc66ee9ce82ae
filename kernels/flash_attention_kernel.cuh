// Flash attention forward (FlashAttention-2 style, portable sm80 path): each CTA owns 128 query
// rows of one head of one segment; each of its 4 warps owns 32 rows (two m16 tiles) and keeps its
// scores, softmax state and output in registers. K/V tiles of 64 keys stream through shared memory
// with cp.async, double buffered. Scores go through mma.sync m16n8k16 with ldmatrix operands; each
// K or V fragment loaded from shared memory feeds both of the warp's m-tiles (4 mma per ldmatrix),
// which is what keeps the tensor cores fed rather than the shared-memory pipe. Q is re-read from
// shared memory per 16-column chunk (registers hold the two tiles' outputs instead). The softmax is
// online in fp32 (exp2 domain). The score matrix never leaves registers.
#pragma once

#include <cfloat>

#include "kernels/cuda_utils.cuh"
#include "kernels/flash_attention_params.h"
#include "kernels/flash_attention_tile.cuh"

namespace qwenvl::kernels::flash {

// Kernel traits: everything that shapes the tiles, in one place.
template <typename Element_, int HeadDim, int MTiles = 2>
struct Traits {
  using Element = Element_;
  static_assert(HeadDim % 16 == 0 && HeadDim <= 256, "head_dim must be a multiple of 16");
  static constexpr int kHeadDim = HeadDim;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kMTiles = MTiles;                 // m16 tiles (16 query rows each) per warp
  static constexpr int kWarpRows = 16 * kMTiles;
  static constexpr int kBlockM = kWarpRows * kWarps;
  static constexpr int kBlockN = 64;
  static constexpr int kChunks = HeadDim / 8;            // 16-byte chunks per row
  static constexpr int kStride = HeadDim + 8;            // +16 B per row: ldmatrix rows hit distinct banks
  static constexpr int kSmemBytes = (kBlockM + 4 * kBlockN) * kStride * int(sizeof(Element));  // Q + 2x(K, V)
};

template <typename T>
__global__ void __launch_bounds__(T::kThreads) flash_fwd_kernel(const Params p) {
  using E = typename T::Element;
  constexpr int D = T::kHeadDim, S = T::kStride, BM = T::kBlockM, BN = T::kBlockN;
  constexpr int MT = T::kMTiles, WR = T::kWarpRows;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  E* sQ = reinterpret_cast<E*>(smem_raw);
  E* sK = sQ + BM * S;      // two stages of BN rows
  E* sV = sK + 2 * BN * S;  // two stages of BN rows

  const QueryTile qt = locate_query_tile<BM>(p);
  if (qt.past_the_queries()) return;
  const int head = qt.head, b = qt.segment, m0 = qt.m0, q_start = qt.q_start, len_q = qt.len_q;
  const int k_start = qt.k_start, len_k = qt.len_k, kv_head = qt.kv_head, diag = qt.diag;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const bool paged = p.block_tables != nullptr;

  const E* q_base = static_cast<const E*>(p.q) + int64_t(q_start) * p.q_row_stride + int64_t(head) * p.q_head_stride;
  const E* k_base = static_cast<const E*>(p.k) + int64_t(kv_head) * p.k_head_stride;
  const E* v_base = static_cast<const E*>(p.v) + int64_t(kv_head) * p.v_head_stride;
  E* o_base = static_cast<E*>(p.o) + int64_t(q_start) * p.o_row_stride + int64_t(head) * p.o_head_stride;
  const int32_t* block_table = paged ? p.block_tables + int64_t(b) * p.block_table_stride : nullptr;

  const int n_blocks = visible_key_blocks(p, len_k, m0, BM, BN, diag);
  if (n_blocks == 0) {
    write_zero_tile<E, BM, T::kChunks, T::kThreads>(o_base, p.o_row_stride, m0, len_q, tid);
    return;
  }

  auto load_kv = [&](int nb, int stage) {
    for (int i = tid; i < BN * T::kChunks; i += T::kThreads) {
      const int r = i / T::kChunks, c = i % T::kChunks;
      const int j = nb * BN + r;
      const bool ok = j < len_k;
      int64_t row = 0;
      if (ok) row = paged ? int64_t(block_table[j / p.block_size]) * p.block_size + j % p.block_size : int64_t(k_start + j);
      // Rows past the segment are zero-filled: masked scores times stale V could make NaN.
      cu::cp_async_16(sK + (stage * BN + r) * S + c * 8, ok ? k_base + row * p.k_row_stride + c * 8 : k_base, ok);
      cu::cp_async_16(sV + (stage * BN + r) * S + c * 8, ok ? v_base + row * p.v_row_stride + c * 8 : v_base, ok);
    }
  };

  for (int i = tid; i < BM * T::kChunks; i += T::kThreads) {
    const int r = i / T::kChunks, c = i % T::kChunks;
    const bool ok = m0 + r < len_q;
    cu::cp_async_16(sQ + r * S + c * 8, ok ? q_base + int64_t(m0 + r) * p.q_row_stride + c * 8 : q_base, ok);
  }
  load_kv(0, 0);
  cu::cp_async_commit();

  // Fragment coordinates (mma.sync m16n8k16): in m-tile mt this thread's rows are g and g + 8.
  const int g = lane / 4, tig = lane % 4;
  const int warp_row = warp * WR;  // the warp's first row within the CTA's tile
  float o[MT][D / 8][4];
  float row_max[MT][2], row_sum[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int t = 0; t < D / 8; ++t) o[mt][t][0] = o[mt][t][1] = o[mt][t][2] = o[mt][t][3] = 0.f;
    row_max[mt][0] = row_max[mt][1] = -INFINITY;
    row_sum[mt][0] = row_sum[mt][1] = 0.f;
  }

  for (int nb = 0; nb < n_blocks; ++nb) {
    const int stage = nb & 1;
    if (nb + 1 < n_blocks) {
      load_kv(nb + 1, stage ^ 1);
      cu::cp_async_commit();
      cu::cp_async_wait<1>();
    } else {
      cu::cp_async_wait<0>();
    }
    __syncthreads();
    const E* k_tile = sK + stage * BN * S;
    const E* v_tile = sV + stage * BN * S;

    // S = Q Kᵀ for the warp's rows and the tile's 64 keys: per m-tile, 8 n-tiles of 8 keys.
    float s[MT][BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int t = 0; t < BN / 8; ++t) s[mt][t][0] = s[mt][t][1] = s[mt][t][2] = s[mt][t][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
      uint32_t qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        cu::ldmatrix_x4(qa[mt], sQ + (warp_row + mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + kc * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        uint32_t kb[4];
        cu::ldmatrix_x4(kb, k_tile + (np * 16 + (lane & 7) + (lane >> 4) * 8) * S + kc * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          cu::mma_16816<E>(s[mt][2 * np], qa[mt], kb[0], kb[1]);
          cu::mma_16816<E>(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
        }
      }
    }

    // Mask keys past the segment and, when causal, right of the diagonal.
    const int key0 = nb * BN;
    const bool need_mask = key0 + BN > len_k || (p.causal && key0 + BN - 1 > m0 + diag);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const int row0 = m0 + warp_row + mt * 16 + g;  // query index within the segment: rows row0, row0 + 8
#pragma unroll
      for (int t = 0; t < BN / 8; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[mt][t][e] * p.scale_log2;
          if (need_mask) {
            const int j = key0 + t * 8 + tig * 2 + (e & 1);
            const int i = row0 + (e >> 1) * 8;
            if (j >= len_k || (p.causal && j > i + diag)) x = -INFINITY;
          }
          s[mt][t][e] = x;
        }
      }
    }

    // Online softmax: rows are shared by the 4 threads of a quad.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = row_max[mt][r];
#pragma unroll
        for (int t = 0; t < BN / 8; ++t) mx = fmaxf(mx, fmaxf(s[mt][t][2 * r], s[mt][t][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float ref = mx == -INFINITY ? 0.f : mx;  // a row that has seen no key yet stays at zero
        const float corr = exp2f(row_max[mt][r] - ref);
        row_max[mt][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int t = 0; t < BN / 8; ++t) {
          s[mt][t][2 * r] = exp2f(s[mt][t][2 * r] - ref);
          s[mt][t][2 * r + 1] = exp2f(s[mt][t][2 * r + 1] - ref);
          sum += s[mt][t][2 * r] + s[mt][t][2 * r + 1];
        }
        row_sum[mt][r] = row_sum[mt][r] * corr + sum;
#pragma unroll
        for (int t = 0; t < D / 8; ++t) {
          o[mt][t][2 * r] *= corr;
          o[mt][t][2 * r + 1] *= corr;
        }
      }
    }

    // O += P V: the score accumulators of two n-tiles are the A fragment of one 16-key chunk.
#pragma unroll
    for (int kc = 0; kc < BN / 16; ++kc) {
      uint32_t pa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        pa[mt][0] = cu::Elem<E>::pack(s[mt][2 * kc][0], s[mt][2 * kc][1]);
        pa[mt][1] = cu::Elem<E>::pack(s[mt][2 * kc][2], s[mt][2 * kc][3]);
        pa[mt][2] = cu::Elem<E>::pack(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
        pa[mt][3] = cu::Elem<E>::pack(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        cu::ldmatrix_x4_trans(vb, v_tile + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + dp * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          cu::mma_16816<E>(o[mt][2 * dp], pa[mt], vb[0], vb[1]);
          cu::mma_16816<E>(o[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
        }
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage
  }

  // Normalise, stage the warp's rows in its own part of sQ (only this warp read those Q rows, and
  // the loop ended on a barrier), then store 16-byte chunks.
  E* sO = sQ + warp_row * S;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      inv[r] = l > 0.f ? 1.f / l : 0.f;
    }
#pragma unroll
    for (int t = 0; t < D / 8; ++t) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        *reinterpret_cast<uint32_t*>(sO + (mt * 16 + g + 8 * r) * S + t * 8 + tig * 2) =
            cu::Elem<E>::pack(o[mt][t][2 * r] * inv[r], o[mt][t][2 * r + 1] * inv[r]);
      }
    }
  }
  __syncwarp();
  for (int i = lane; i < WR * T::kChunks; i += 32) {
    const int r = i / T::kChunks, c = i % T::kChunks;
    const int row = m0 + warp_row + r;
    if (row < len_q)
      *reinterpret_cast<uint4*>(o_base + int64_t(row) * p.o_row_stride + c * 8) =
          *reinterpret_cast<const uint4*>(sO + r * S + c * 8);
  }
}

template <typename E, int HeadDim>
void launch_flash_fwd(const Params& p, cudaStream_t stream) {
  using T = Traits<E, HeadDim>;
  launch_over_query_tiles<T>(flash_fwd_kernel<T>, p, stream, p);
}

}  // namespace qwenvl::kernels::flash
