// Flash attention forward on Hopper (sm_90a): the tensor-core work goes through warpgroup MMA
// (wgmma) straight from shared memory, which mma.sync cannot do: no ldmatrix traffic for K and V,
// and 64xN tiles per instruction. Each CTA owns 128 query rows of one head of one segment, split
// between two consumer warpgroups of 64 rows, and a producer warpgroup. The producer's first thread
// loads Q and streams the K/V tiles of 128 keys through a ring of shared-memory stages with TMA, in
// the swizzled layouts wgmma's descriptors describe; a stage's "full" mbarrier tells the consumers
// it has landed, its "empty" mbarrier tells the producer both warpgroups are done with it. No
// CTA-wide barrier runs per tile, so the two warpgroups can take turns on the tensor cores (named
// barriers order their MMA issues, FlashAttention-3's ping-pong): one's softmax runs while the
// other's MMAs do. Within a warpgroup the softmax of one tile also overlaps the P V of the tile
// before. S = Q Kᵀ reads Q and K from shared memory; O += P V takes P from registers (the S
// accumulators, rounded to 16 bits) and V from shared memory, N-major. The softmax is online in fp32
// (exp2 domain); the score matrix never leaves registers. Same contract as flash_attention_kernel.cuh,
// for contiguous K/V.
#pragma once

#include <cfloat>
#include <type_traits>

#include "kernels/cuda_utils.cuh"
#include "kernels/flash_attention_params.h"
#include "kernels/flash_attention_tile.cuh"
#include "kernels/tensor_map.h"
#include "kernels/tma.cuh"
#include "kernels/wgmma.cuh"

namespace qwenvl::kernels::flash_hopper {

using flash::Params;

template <typename Element_, int HeadDim>
struct Traits {
  using Element = Element_;
  static_assert(HeadDim % 16 == 0, "head_dim must be a multiple of 16");
  static constexpr int kHeadDim = HeadDim;
  // A producer warpgroup (one thread of it issues the loads) and two consumer warpgroups of 64 query
  // rows. A whole warpgroup for the producer because registers are handed out per warpgroup: it
  // gives most of its own to the consumers (setmaxnreg).
  static constexpr int kConsumerWarps = 8;
  static constexpr int kThreads = 128 + 32 * kConsumerWarps;
  static constexpr int kProducerRegisters = 24, kConsumerRegisters = 240;
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = 128;
  // Shared tiles are column blocks of rows of kSwizzleBytes (128 B when the head dim allows it, 32 B
  // for head dim 80), 16-byte chunks XOR-swizzled by row: conflict-free and what wgmma reads. TMA
  // writes one column block per load, in the same swizzle.
  static constexpr int kSwizzleBytes = HeadDim % 64 == 0 ? 128 : 32;
  static constexpr wgmma::Swizzle kSwizzle = kSwizzleBytes == 128 ? wgmma::Swizzle::k128B : wgmma::Swizzle::k32B;
  static constexpr tma::Swizzle kTmaSwizzle = kSwizzleBytes == 128 ? tma::Swizzle::k128B : tma::Swizzle::k32B;
  static constexpr int kBlockCols = kSwizzleBytes / 2;  // elements per column block
  static constexpr int kColBlocks = HeadDim / kBlockCols;
  static_assert(HeadDim % kBlockCols == 0, "the head dim must be whole column blocks");
  static constexpr int kChunks = HeadDim / 8;  // 16-byte chunks per row
  static constexpr int kQBytes = kBlockM * HeadDim * 2;
  static constexpr int kKVBytes = kBlockN * HeadDim * 2;
  // As many K/V stages as fit beside Q (227 KB per CTA): 3 at head dim 128, 4 at 80.
  static constexpr int kStages = (227 * 1024 - kQBytes - 1024 - 128) / (2 * kKVBytes) >= 4 ? 4 : 3;
  static constexpr int kBarrierBytes = 8 * (1 + 2 * kStages);
  static constexpr int kSmemBytes = kQBytes + 2 * kStages * kKVBytes + kBarrierBytes + 1024;  // + alignment slack
};

// Tensor maps of q, k and v for the producer's loads, beside the plain parameters.
struct Args {
  Params p;
  CUtensorMap q, k, v;
};

template <typename T>
__global__ void __launch_bounds__(T::kThreads, 1) flash_fwd_hopper_kernel(const __grid_constant__ Args args) {
  using E = typename T::Element;
  const Params& p = args.p;
  constexpr int D = T::kHeadDim, BM = T::kBlockM, BN = T::kBlockN, W = T::kSwizzleBytes, S = T::kStages;
  extern __shared__ unsigned char smem_raw[];
  // Swizzle patterns repeat every 1024 bytes and descriptors (and TMA) assume they start aligned.
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  unsigned char* sQ = smem;
  unsigned char* sK = sQ + T::kQBytes;       // S stages
  unsigned char* sV = sK + S * T::kKVBytes;  // S stages
  uint64_t* q_full = reinterpret_cast<uint64_t*>(sV + S * T::kKVBytes);
  uint64_t* kv_full = q_full + 1;     // [S]: the stage's K and V have landed
  uint64_t* kv_empty = kv_full + S;   // [S]: every consumer warp is done with the stage

  const flash::QueryTile qt = flash::locate_query_tile<BM>(p);
  if (qt.past_the_queries()) return;
  const int head = qt.head, m0 = qt.m0, q_start = qt.q_start, len_q = qt.len_q;
  const int k_start = qt.k_start, len_k = qt.len_k, kv_head = qt.kv_head, diag = qt.diag;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  E* o_base = static_cast<E*>(p.o) + int64_t(q_start) * p.o_row_stride + int64_t(head) * p.o_head_stride;

  const int n_blocks = flash::visible_key_blocks(p, len_k, m0, BM, BN, diag);
  if (n_blocks == 0) {
    flash::write_zero_tile<E, BM, T::kChunks, T::kThreads>(o_base, p.o_row_stride, m0, len_q, tid);
    return;
  }

  if (tid == 0) {
    tma::init(q_full, 1);
    for (int s = 0; s < S; ++s) {
      tma::init(&kv_full[s], 1);
      tma::init(&kv_empty[s], T::kConsumerWarps);
    }
    tma::fence_init();
  }
  __syncthreads();  // the last CTA-wide barrier: from here the producer and consumers meet on mbarriers

  if (warp < 4) {
    wgmma::set_max_registers<false, T::kProducerRegisters>();
    // Producer. Rows of a K/V tile past the segment are the next segment's keys (or zeros past the
    // tensor): finite, and their scores are masked to -inf, so they add exactly 0 x V.
    if (tid == 0) {
      tma::arrive_expect_bytes(q_full, T::kQBytes);
#pragma unroll
      for (int cb = 0; cb < T::kColBlocks; ++cb)
        tma::load_3d(sQ + cb * BM * W, &args.q, cb * T::kBlockCols, head, q_start + m0, q_full);
      for (int t = 0; t < n_blocks; ++t) {
        const int stage = t % S;
        if (t >= S) tma::wait(&kv_empty[stage], (t / S - 1) & 1);  // tile t - S has been used up
        tma::arrive_expect_bytes(&kv_full[stage], 2 * T::kKVBytes);
        unsigned char* k_tile = sK + stage * T::kKVBytes;
        unsigned char* v_tile = sV + stage * T::kKVBytes;
        const int row = k_start + t * BN;
#pragma unroll
        for (int cb = 0; cb < T::kColBlocks; ++cb) {
          tma::load_3d(k_tile + cb * BN * W, &args.k, cb * T::kBlockCols, kv_head, row, &kv_full[stage]);
          tma::load_3d(v_tile + cb * BN * W, &args.v, cb * T::kBlockCols, kv_head, row, &kv_full[stage]);
        }
      }
    }
    return;
  }

  // Consumers. This thread's rows (accumulator layout, wgmma.cuh): g and g + 8 of its warp's 16.
  wgmma::set_max_registers<true, T::kConsumerRegisters>();
  const int wg = warp / 4 - 1, warp_in_wg = warp % 4;
  const int g = lane / 4, tig = lane % 4;
  const int wg_row = wg * 64;                          // the warpgroup's first row within the tile
  const int row0 = m0 + wg_row + warp_in_wg * 16 + g;  // query index within the segment
  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};

  // Ping-pong: warpgroup w issues its MMAs after named barrier 1 + w completes, which takes the
  // other warpgroup's signal that it has issued its own. Warpgroup 1 signals once up front so that
  // warpgroup 0 goes first. Both walk all n_blocks tiles (a causal tile one of them does not see is
  // masked whole), so the signals pair up: each syncs n_blocks + 1 times.
  constexpr int kPair = 256;
  const int my_turn = 1 + wg, other_turn = 2 - wg;
  if (wg == 1) tma::named_arrive(other_turn, kPair);

  // Descriptors. Q and K are K-major (the head dim is the reduction): 8-row groups 8·W apart,
  // 16-element steps either inside a 128-byte row or one 32-byte column block further.
  auto k_major_step = [&](int rows, int kk) { return (kk * 16 / T::kBlockCols) * rows * W + (kk * 16 % T::kBlockCols) * 2; };
  const unsigned char* q_wg = sQ + wg_row * W;

  uint32_t pa[BN / 16][4];  // P of the previous tile, rounded to 16 bits, waiting for its V
  float s[BN / 2];           // this tile's scores, then its probabilities
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) s[i] = 0.f;  // defined before the first wgmma names them

  auto issue_s = [&](int tile) {  // S = Q Kᵀ: 64 rows x 128 keys per warpgroup
    const unsigned char* k_tile = sK + (tile % S) * T::kKVBytes;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {  // the first step overwrites S: nothing to zero first
      const uint64_t da = wgmma::descriptor(q_wg + k_major_step(BM, kk), 16, 8 * W, T::kSwizzle);
      const uint64_t db = wgmma::descriptor(k_tile + k_major_step(BN, kk), 16, 8 * W, T::kSwizzle);
      wgmma::mma_ss<BN, E>(s, da, db, kk > 0);
    }
    wgmma::commit_group();
  };
  auto issue_pv = [&](int tile) {  // O += P V
    const unsigned char* v_tile = sV + (tile % S) * T::kKVBytes;
#pragma unroll
    for (int kc = 0; kc < BN / 16; ++kc) {
      // V is N-major (the head dim is N): column blocks BN·W apart, 8-key groups 8·W apart.
      const uint64_t dv = wgmma::descriptor(v_tile + kc * 16 * W, BN * W, 8 * W, T::kSwizzle);
      wgmma::mma_rs_nmajor<D, E>(o, pa[kc], dv, 1);
    }
    wgmma::commit_group();
  };
  // The stage of `tile` may be refilled: this warp's MMAs that read it have completed.
  auto release = [&](int tile) {
    if (lane == 0) tma::arrive(&kv_empty[tile % S]);
  };
  auto wait_tile = [&](int tile) { tma::wait(&kv_full[tile % S], (tile / S) & 1); };
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
  // Software pipeline inside each warpgroup: while the softmax of tile n runs on the CUDA cores,
  // the tensor cores work on P(n-1) V(n-1) (and on the other warpgroup's MMAs).
  float corr[2];
  tma::wait(q_full, 0);
  wait_tile(0);
  tma::named_sync(my_turn, kPair);
  wgmma::fence();
  issue_s(0);
  tma::named_arrive(other_turn, kPair);
  wgmma::wait_group<0>();
  wgmma::pin(s);
  softmax(0, corr);
  rescale_o_and_pack_p(corr);
  for (int nb = 1; nb < n_blocks; ++nb) {
    wait_tile(nb);
    tma::named_sync(my_turn, kPair);
    wgmma::pin(o);
    wgmma::fence();
    issue_s(nb);
    issue_pv(nb - 1);
    tma::named_arrive(other_turn, kPair);
    wgmma::wait_group<1>();  // S is ready; P V runs on while the softmax does
    wgmma::pin(s);
    softmax(nb, corr);
    wgmma::wait_group<0>();  // O is final for tile nb - 1: rescale it, and pa may be overwritten
    wgmma::pin(o);
    release(nb - 1);
    rescale_o_and_pack_p(corr);
  }
  tma::named_sync(my_turn, kPair);
  wgmma::pin(o);
  wgmma::fence();
  issue_pv(n_blocks - 1);
  if (wg == 0) tma::named_arrive(other_turn, kPair);  // warpgroup 1's last turn; its own last signal has no taker
  wgmma::wait_group<0>();
  wgmma::pin(o);

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

// Contiguous K/V with at least one key row (a tensor map needs one); the rest takes the portable kernel.
inline bool takes(const Params& p) { return p.block_tables == nullptr && p.k_rows > 0; }

template <typename E, int HeadDim>
void launch_flash_fwd_hopper(const Params& p, cudaStream_t stream) {
  using T = Traits<E, HeadDim>;
  if (flash::nothing_to_launch(flash::query_tile_grid<T>(p)) || p.q_rows == 0) return;  // nothing to write
  constexpr bool bf16 = std::is_same_v<E, __nv_bfloat16>;
  Args args{p, {}, {}, {}};
  args.q = tma::rows_heads_dim_map(p.q, bf16, p.q_rows, p.num_heads, HeadDim, p.q_row_stride, p.q_head_stride,
                                   T::kBlockM, T::kBlockCols, T::kTmaSwizzle);
  args.k = tma::rows_heads_dim_map(p.k, bf16, p.k_rows, p.num_kv_heads, HeadDim, p.k_row_stride, p.k_head_stride,
                                   T::kBlockN, T::kBlockCols, T::kTmaSwizzle);
  args.v = tma::rows_heads_dim_map(p.v, bf16, p.k_rows, p.num_kv_heads, HeadDim, p.v_row_stride, p.v_head_stride,
                                   T::kBlockN, T::kBlockCols, T::kTmaSwizzle);
  flash::launch_over_query_tiles<T>(flash_fwd_hopper_kernel<T>, p, stream, args);
}

}  // namespace qwenvl::kernels::flash_hopper
