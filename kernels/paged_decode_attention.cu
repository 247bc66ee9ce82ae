// Paged decode attention on the GPU, split over the KV length (flash-decoding) and bound by memory
// bandwidth: every K and V byte is read once, with many 16-byte loads in flight, and the arithmetic
// runs on the tensor cores so that it hides under the loads.
//
// One CTA of kWarps warps handles one (kv head, split of `partition` tokens, sequence) with all the
// query heads that share the kv head (up to 8 per tensor-core tile, two tiles for up to 16). The
// split's 16-token tiles are dealt round-robin to the warps; each warp keeps an online softmax in
// registers and double-buffers its tiles in registers (K and V rows loaded straight from the cache
// into the mma fragment layout, no shared memory on the way).
//   scores S^T [16 tokens x 8 heads] = K [16 x D] . Q^T     (mma m16n8k16, A = K rows, B = Q)
//   out    O^T [D x 8 heads]        += V^T [D x 16] . P^T   (A = V^T, B = P^T)
// Dot products do not depend on the order of the head dimension, so each lane loads whole 16-byte
// chunks of a K row and Q uses the same permutation (chunk 4j + lane%4 feeds k-steps 2j and 2j+1).
// V^T needs token pairs per register: byte permutes build them from two rows' chunks. P^T is S^T's
// accumulator transposed per 8x8 block (movmatrix). The warps then merge through shared memory.
// A sequence that fits one split writes the output directly; otherwise a second kernel merges the
// splits' partial softmaxes. The split count comes from host values alone (max_seq_len, which the
// graph path sets to the cache capacity); splits past a sequence's device length exit at once.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cmath>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "paged_decode_attention";
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTile = 16;              // tokens per mma tile; block_size is a multiple of it
constexpr int kMaxGroup = 16;          // query heads per kv head (two 8-head tiles)
constexpr int kMaxPartition = 1024;    // tokens per split, at most (up to 16 tiles per warp)
constexpr int kMinPartition = 64;      // one tile per warp
constexpr int kMergeThreads = 128;

struct DecodeParams {
  const void* q;
  const void* k_cache;
  const void* v_cache;
  void* out;
  float* part_out;  // [seqs, heads, splits, head_dim]
  float* part_max;  // [seqs, heads, splits], log2 domain
  float* part_sum;  // [seqs, heads, splits]
  int64_t q_row_stride, q_head_stride, o_row_stride, o_head_stride;
  int64_t slot_stride;  // num_kv_heads * head_dim
  const int32_t* block_tables;
  int64_t block_table_stride;
  const int32_t* seq_lens;
  int block_size, num_heads, group, num_splits, partition;
  float scale_log2;
};

// Tokens of a sequence that the launch covers: its length, clamped to the splits the host sized.
__device__ __forceinline__ int covered_len(const DecodeParams& p, int seq) {
  return min(max(p.seq_lens[seq], 0), p.num_splits * p.partition);
}

// An L2 policy for data read once: its lines are the first evicted, so streaming the cache does not
// push out (and write back) what other kernels left in the L2.
__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}

// A streamed 16-byte read of the cache: no L1 allocation, the L2 fetches whole 256-byte spans
// (the four quarters of a 256-byte K row come from four loads of the same warp).
__device__ __forceinline__ uint4 load_stream(const void* ptr, uint64_t policy) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4], %5;\n"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(ptr), "l"(policy));
  return r;
}

__device__ __forceinline__ uint32_t transpose_8x8(uint32_t x) {
  uint32_t r;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(r) : "r"(x));
  return r;
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Element e of two 8-element chunks (rows t and t+1) packed as the pair (row t, row t+1).
__device__ __forceinline__ uint32_t pair_of(const uint4& lo, const uint4& hi, int e) {
  return __byte_perm(word(lo, e / 2), word(hi, e / 2), (e & 1) ? 0x7632 : 0x5410);
}

// Registers of one 16-token tile for one lane (g = lane / 4, c = lane % 4):
//   k[r][j]: K row (g, g + 8 for r = 0, 1), 16-byte chunk 4j + c;
//   v[i][h]: V row (2c, 2c + 1, 2c + 8, 2c + 9 for i = 0..3), chunk g (h = 0) and 8 + g (h = 1).
template <int KJ>
struct Tile {
  uint4 k[2][KJ];
  uint4 v[4][2];
};

template <typename E, int D, int NT>
struct Warp {
  static constexpr int kChunks = D / 8;        // 16-byte chunks per row
  static constexpr int KJ = (kChunks + 3) / 4;  // K chunks per lane per row
  static_assert(D % 8 == 0 && kChunks >= 8 && kChunks <= 16, "head_dim 64..128, a multiple of 8");

  const DecodeParams& p;
  const int g, c;
  const uint64_t policy = evict_first_policy();
  uint4 qf[NT][KJ];    // Q^T fragments: head nt * 8 + g, chunk 4j + c
  float o[NT][8][4];   // O^T accumulators, m-tile mt: dims (8g + mt, 64 + 8g + mt) x heads (2c, 2c + 1)
  float m[NT][2], l[NT][2];  // running max (log2 domain) and this lane's partial sum, heads 2c, 2c + 1

  __device__ Warp(const DecodeParams& params, int lane) : p(params), g(lane / 4), c(lane % 4) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int mt = 0; mt < 8; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) o[nt][mt][i] = 0.f;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        m[nt][j] = -INFINITY;
        l[nt][j] = 0.f;
      }
    }
  }

  __device__ void load_q(const E* q, int group) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int hh = nt * 8 + g;
#pragma unroll
      for (int j = 0; j < KJ; ++j) {
        const int chunk = 4 * j + c;
        qf[nt][j] = make_uint4(0, 0, 0, 0);
        if (hh < group && chunk < kChunks)
          qf[nt][j] = *reinterpret_cast<const uint4*>(q + int64_t(hh) * p.q_head_stride + chunk * 8);
      }
    }
  }

  // Rows of the tile at cache slot `slot0` (16 consecutive slots of one block); rows >= valid are
  // not read (zeros).
  __device__ void load(Tile<KJ>& t, const E* k_cache, const E* v_cache, int64_t slot0, int valid) const {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = g + 8 * r;
      const E* src = k_cache + (slot0 + row) * p.slot_stride;
#pragma unroll
      for (int j = 0; j < KJ; ++j) {
        const int chunk = 4 * j + c;
        t.k[r][j] = make_uint4(0, 0, 0, 0);
        if (row < valid && chunk < kChunks) t.k[r][j] = load_stream(src + chunk * 8, policy);
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = 2 * c + (i & 1) + 8 * (i >> 1);
      const E* src = v_cache + (slot0 + row) * p.slot_stride;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int chunk = g + 8 * h;
        t.v[i][h] = make_uint4(0, 0, 0, 0);
        if (row < valid && chunk < kChunks) t.v[i][h] = load_stream(src + chunk * 8, policy);
      }
    }
  }

  __device__ void compute(const Tile<KJ>& t, int valid) {
    // S^T = K Q^T: s[nt] = (token g: heads 2c, 2c+1; token g+8: heads 2c, 2c+1).
    float s[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) s[nt][i] = 0.f;
#pragma unroll
      for (int j = 0; j < KJ; ++j) {
        const uint32_t a0[4] = {t.k[0][j].x, t.k[1][j].x, t.k[0][j].y, t.k[1][j].y};
        cu::mma_16816<E>(s[nt], a0, qf[nt][j].x, qf[nt][j].y);
        const uint32_t a1[4] = {t.k[0][j].z, t.k[1][j].z, t.k[0][j].w, t.k[1][j].w};
        cu::mma_16816<E>(s[nt], a1, qf[nt][j].z, qf[nt][j].w);
      }
    }
    // Online softmax per head; a head's max is shared by the 8 lanes of one c (xor over g).
    uint32_t pb[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      float pr[4];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const float s0 = g < valid ? s[nt][j] * p.scale_log2 : -INFINITY;
        const float s1 = g + 8 < valid ? s[nt][2 + j] * p.scale_log2 : -INFINITY;
        float mx = fmaxf(s0, s1);
#pragma unroll
        for (int off = 4; off < 32; off *= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float m_new = fmaxf(m[nt][j], mx);
        const float ref = m_new == -INFINITY ? 0.f : m_new;
        const float alpha = exp2f(m[nt][j] - ref);
        pr[j] = exp2f(s0 - ref);
        pr[2 + j] = exp2f(s1 - ref);
        l[nt][j] = l[nt][j] * alpha + pr[j] + pr[2 + j];
        m[nt][j] = m_new;
#pragma unroll
        for (int mt = 0; mt < 8; ++mt) {
          o[nt][mt][j] *= alpha;
          o[nt][mt][2 + j] *= alpha;
        }
      }
      pb[nt][0] = transpose_8x8(cu::Elem<E>::pack(pr[0], pr[1]));  // tokens 2c, 2c+1 of head g
      pb[nt][1] = transpose_8x8(cu::Elem<E>::pack(pr[2], pr[3]));  // tokens 2c+8, 2c+9
    }
    // O^T += V^T P^T, one m-tile per element of the lane's two V chunks.
#pragma unroll
    for (int mt = 0; mt < 8; ++mt) {
      const uint32_t a[4] = {pair_of(t.v[0][0], t.v[1][0], mt), pair_of(t.v[0][1], t.v[1][1], mt),
                             pair_of(t.v[2][0], t.v[3][0], mt), pair_of(t.v[2][1], t.v[3][1], mt)};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) cu::mma_16816<E>(o[nt][mt], a, pb[nt][0], pb[nt][1]);
    }
  }

  // The lane's partial sums over its tokens become the warp's.
  __device__ void finish() {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int off = 4; off < 32; off *= 2) l[nt][j] += __shfl_xor_sync(0xffffffffu, l[nt][j], off);
  }
};

template <typename E>
__device__ __forceinline__ void store8(E* dst, const float (&src)[8], float scale) {
  uint4 raw;
  E* e = reinterpret_cast<E*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) e[i] = cu::Elem<E>::from_float(src[i] * scale);
  *reinterpret_cast<uint4*>(dst) = raw;
}

template <typename E, int D, int NT>
__global__ void __launch_bounds__(kThreads, 2) paged_decode_kernel(const DecodeParams p) {
  using W = Warp<E, D, NT>;
  constexpr int kHeads = NT * 8;
  __shared__ __align__(16) float o_s[kWarps][kHeads][D];
  __shared__ float m_s[kWarps][kHeads], l_s[kWarps][kHeads];

  cu::wait_for_previous_grid();  // launched dependent: the rotary/cache write before it may be finishing
  // The merge kernel may start its CTAs now (they wait for this grid's results before reading).
  cu::allow_next_grid();
  __shared__ int32_t entries_s[kMaxPartition / kTile + 1];  // block-table entries of the split
  const int kv_head = blockIdx.x, split = blockIdx.y, seq = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t0 = split * p.partition;
  // The split's block-table entries are read beside the length (not after it): entries past the
  // length are read but never used, and the read stays inside the table's row.
  const int b0 = t0 / p.block_size;
  const int n_entries = (t0 + p.partition - 1) / p.block_size - b0 + 1;
  int32_t entry = 0;
  if (threadIdx.x < n_entries && p.block_table_stride > 0) {
    const int32_t* src = p.block_tables + int64_t(seq) * p.block_table_stride +
                         min(int64_t(b0) + threadIdx.x, p.block_table_stride - 1);
    asm volatile("ld.global.nc.b32 %0, [%1];\n" : "=r"(entry) : "l"(src));
  }
  const int len = covered_len(p, seq);
  if (split > 0 && t0 >= len) return;  // past this sequence's length: nothing to do
  const int t1 = min(len, t0 + p.partition);
  const int n_tiles = (t1 - t0 + kTile - 1) / kTile;
  const int G = p.group, h0 = kv_head * G;

  W w(p, lane);
  w.load_q(static_cast<const E*>(p.q) + int64_t(seq) * p.q_row_stride + int64_t(h0) * p.q_head_stride, G);
  if (threadIdx.x < n_entries) entries_s[threadIdx.x] = entry;
  __syncthreads();

  const E* k_cache = static_cast<const E*>(p.k_cache) + kv_head * D;
  const E* v_cache = static_cast<const E*>(p.v_cache) + kv_head * D;
  auto tile_slot = [&](int i) {  // a tile never straddles blocks
    const int tt = t0 + i * kTile;
    return int64_t(entries_s[tt / p.block_size - b0]) * p.block_size + tt % p.block_size;
  };
  auto tile_valid = [&](int i) { return min(kTile, t1 - (t0 + i * kTile)); };
  // Warp w takes tiles w, w + kWarps, ... (the warps read neighbouring rows at the same time).
  if (NT == 1) {  // two tiles in flight per warp
    Tile<W::KJ> ta, tb;
    for (int i = warp; i < n_tiles; i += 2 * kWarps) {
      if (i == warp) w.load(ta, k_cache, v_cache, tile_slot(i), tile_valid(i));
      const int ib = i + kWarps;
      if (i == warp && ib < n_tiles) w.load(tb, k_cache, v_cache, tile_slot(ib), tile_valid(ib));
      w.compute(ta, tile_valid(i));
      const int ia_next = i + 2 * kWarps;
      if (ia_next < n_tiles) w.load(ta, k_cache, v_cache, tile_slot(ia_next), tile_valid(ia_next));
      if (ib < n_tiles) {
        w.compute(tb, tile_valid(ib));
        const int ib_next = ib + 2 * kWarps;
        if (ib_next < n_tiles) w.load(tb, k_cache, v_cache, tile_slot(ib_next), tile_valid(ib_next));
      }
    }
  } else {  // 16 query heads: twice the accumulators, one tile in flight
    Tile<W::KJ> ta;
    for (int i = warp; i < n_tiles; i += kWarps) {
      w.load(ta, k_cache, v_cache, tile_slot(i), tile_valid(i));
      w.compute(ta, tile_valid(i));
    }
  }
  w.finish();

  // Merge the warps: each writes its unnormalised output, max and sum per head.
  const int g = lane / 4, c = lane % 4;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int hh = nt * 8 + 2 * c + j;
#pragma unroll
      for (int mt = 0; mt < 8; ++mt) {
        o_s[warp][hh][8 * g + mt] = w.o[nt][mt][j];
        if (8 + g < W::kChunks) o_s[warp][hh][64 + 8 * g + mt] = w.o[nt][mt][2 + j];
      }
      if (g == 0) {
        m_s[warp][hh] = w.m[nt][j];
        l_s[warp][hh] = w.l[nt][j];
      }
    }
  }
  __syncthreads();

  const bool final_out = len <= p.partition;  // one split covers the sequence (or it is empty)
  for (int idx = threadIdx.x; idx < G * W::kChunks; idx += kThreads) {
    const int hh = idx / W::kChunks, ch = idx % W::kChunks;
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) mx = fmaxf(mx, m_s[i][hh]);
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    float sum = 0.f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int i = 0; i < kWarps; ++i) {
        const float wgt = exp2f(m_s[i][hh] - mx);
        sum += wgt * l_s[i][hh];
        const float4 lo = *reinterpret_cast<const float4*>(&o_s[i][hh][ch * 8]);
        const float4 hi = *reinterpret_cast<const float4*>(&o_s[i][hh][ch * 8 + 4]);
        acc[0] += wgt * lo.x;
        acc[1] += wgt * lo.y;
        acc[2] += wgt * lo.z;
        acc[3] += wgt * lo.w;
        acc[4] += wgt * hi.x;
        acc[5] += wgt * hi.y;
        acc[6] += wgt * hi.z;
        acc[7] += wgt * hi.w;
      }
    }
    const int h = h0 + hh;
    if (final_out) {
      store8(static_cast<E*>(p.out) + int64_t(seq) * p.o_row_stride + int64_t(h) * p.o_head_stride + ch * 8, acc,
             sum > 0.f ? 1.f / sum : 0.f);
    } else {
      const int64_t row = (int64_t(seq) * p.num_heads + h) * p.num_splits + split;
      float4* dst = reinterpret_cast<float4*>(p.part_out + row * D + ch * 8);
      dst[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      dst[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
      if (ch == 0) {
        p.part_max[row] = mx;
        p.part_sum[row] = sum;
      }
    }
  }
}

// Merges the splits of one (sequence, head): weights exp2(max_i - max) rescale each partial sum.
// Sequences that one split covered were written by the first kernel.
template <typename E, int D>
__global__ void __launch_bounds__(kMergeThreads) paged_decode_merge_kernel(const DecodeParams p) {
  // First, on every path: the partial results are complete, and this grid ends after the one
  // before it (a sequence one split covered was written there, and what follows reads it).
  cu::wait_for_previous_grid();
  const int h = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
  const int len = covered_len(p, seq);
  if (len <= p.partition) return;
  const int splits = (len + p.partition - 1) / p.partition;
  const int64_t row0 = (int64_t(seq) * p.num_heads + h) * p.num_splits;
  float mx = -INFINITY;
  for (int i = 0; i < splits; ++i) mx = fmaxf(mx, p.part_max[row0 + i]);
  float sum = 0.f, acc = 0.f;
  if (mx != -INFINITY) {
    for (int i = 0; i < splits; ++i) {
      const float w = exp2f(p.part_max[row0 + i] - mx);
      sum += w * p.part_sum[row0 + i];
      if (d < D) acc += w * p.part_out[(row0 + i) * D + d];
    }
  }
  if (d < D)
    static_cast<E*>(p.out)[int64_t(seq) * p.o_row_stride + int64_t(h) * p.o_head_stride + d] =
        cu::Elem<E>::from_float(sum > 0.f ? acc / sum : 0.f);
}

template <typename E, int D>
void launch(DecodeParams& p, int num_seqs, int num_kv_heads, cudaStream_t stream) {
  const dim3 grid(num_kv_heads, p.num_splits, num_seqs);  // kv heads adjacent: they share cache rows
  const auto kernel = p.group <= 8 ? paged_decode_kernel<E, D, 1> : paged_decode_kernel<E, D, 2>;
  cu::launch_dependent(kOp, kernel, grid, dim3(kThreads), 0, stream, p);
  // The merge grid is launched while the first one drains.
  if (p.num_splits > 1)
    cu::launch_dependent(kOp, paged_decode_merge_kernel<E, D>, dim3(p.num_heads, num_seqs), dim3(kMergeThreads), 0,
                         stream, p);
}

template <typename E>
void launch_head_dim(int64_t head_dim, DecodeParams& p, int num_seqs, int num_kv_heads, cudaStream_t stream) {
  switch (head_dim) {
    case 80: return launch<E, 80>(p, num_seqs, num_kv_heads, stream);
    case 128: return launch<E, 128>(p, num_seqs, num_kv_heads, stream);
    default: detail::fail(kOp, "head_dim ", head_dim, " has no CUDA kernel (80 and 128 have)");
  }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Tokens per split, from host values only: the largest partition that still gives every SM a CTA
// if the sequences were as long as max_seq_len (64 sequences x 4 kv heads at 1k: one split, one
// wave, no merge; batch 1 at capacity 8192: 128 tokens, two tiles per warp). Measured on an H100:
// fewer, longer splits beat more waves of shorter ones (see kernels/NOTES.md).
int choose_partition(int64_t pairs, int64_t max_seq_len, int sms) {
  int partition = kMaxPartition;
  while (partition > kMinPartition && pairs * ((max_seq_len + partition - 1) / partition) < sms) partition /= 2;
  return partition;
}

}  // namespace

void paged_decode_attention(const at::Tensor& q_in, const at::Tensor& k_cache,
                            const at::Tensor& v_cache, const at::Tensor& block_tables_in,
                            const at::Tensor& seq_lens_in, int64_t max_seq_len, double scale,
                            at::Tensor& out) {
  const auto dtype = q_in.scalar_type();
  if (dtype != at::kBFloat16 && dtype != at::kHalf)
    detail::fail(kOp, "the CUDA kernel takes bf16 or fp16, got ", dtype);
  const int64_t num_seqs = q_in.size(0), heads = q_in.size(1), kv_heads = k_cache.size(2);
  const int64_t group = heads / kv_heads;
  if (group > kMaxGroup) detail::fail(kOp, group, " query heads per kv head; the kernel takes up to ", kMaxGroup);
  if (num_seqs == 0) return;
  if (!aligned16(k_cache.data_ptr()) || !aligned16(v_cache.data_ptr()))
    detail::fail(kOp, "the caches must start on a 16-byte boundary");
  // 16-byte vector reads of q rows and writes of out rows.
  const bool q_ok = q_in.stride(2) == 1 && q_in.stride(1) % 8 == 0 && q_in.stride(0) % 8 == 0 && aligned16(q_in.data_ptr());
  const at::Tensor q = q_ok ? q_in : q_in.contiguous();
  const bool out_ok = out.is_contiguous() && aligned16(out.data_ptr());
  at::Tensor o = out_ok ? out : at::empty(out.sizes(), out.options());
  const at::Tensor block_tables = block_tables_in.contiguous();
  const at::Tensor seq_lens = seq_lens_in.contiguous();
  const c10::cuda::CUDAGuard guard(q.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(q.device().index()).stream();

  DecodeParams p{};
  p.q = q.data_ptr();
  p.k_cache = k_cache.data_ptr();
  p.v_cache = v_cache.data_ptr();
  p.out = o.data_ptr();
  p.q_row_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.o_row_stride = o.stride(0);
  p.o_head_stride = o.stride(1);
  p.slot_stride = kv_heads * k_cache.size(3);
  p.block_tables = block_tables.data_ptr<int32_t>();
  p.block_table_stride = block_tables.size(1);
  p.seq_lens = seq_lens.data_ptr<int32_t>();
  p.block_size = static_cast<int>(k_cache.size(1));
  p.num_heads = static_cast<int>(heads);
  p.group = static_cast<int>(group);
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t len_bound = std::max<int64_t>(1, max_seq_len);
  p.partition = choose_partition(num_seqs * kv_heads, len_bound, sms);
  const int64_t splits = (len_bound + p.partition - 1) / p.partition;
  if (splits > 65535 || num_seqs > 65535 || kv_heads > 65535)
    detail::fail(kOp, "max_seq_len ", max_seq_len, " (", splits, " splits) or ", num_seqs,
                 " sequences exceed the launch grid (65535 each)");
  p.num_splits = static_cast<int>(splits);
  p.scale_log2 = static_cast<float>(scale * M_LOG2E);
  at::Tensor workspace;
  if (p.num_splits > 1) {
    const int64_t rows = num_seqs * heads * p.num_splits;
    workspace = at::empty({rows * (q.size(2) + 2)}, q.options().dtype(at::kFloat));
    p.part_out = workspace.data_ptr<float>();
    p.part_max = p.part_out + rows * q.size(2);
    p.part_sum = p.part_max + rows;
  }
  if (dtype == at::kBFloat16)
    launch_head_dim<__nv_bfloat16>(q.size(2), p, static_cast<int>(num_seqs), static_cast<int>(kv_heads), stream);
  else
    launch_head_dim<__half>(q.size(2), p, static_cast<int>(num_seqs), static_cast<int>(kv_heads), stream);
  if (!out_ok) out.copy_(o);
}

}  // namespace qwenvl::kernels::cuda
