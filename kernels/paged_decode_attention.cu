// Paged decode attention on the GPU, split over the KV length (flash-decoding). One CTA handles
// one (sequence, kv head, split of kPartition tokens) with all the query heads that share the kv
// head, so each K/V row is read once per group. Scores of the split live in shared memory; a second
// kernel merges the splits' partial softmaxes. A context that fits one split skips the merge.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "paged_decode_attention";
constexpr int kThreads = 128;
constexpr int kPartition = 512;    // tokens per split
constexpr int kMaxGroup = 16;      // query heads per kv head
constexpr int kMaxPairsPerThread = 2;  // (head, 16-byte chunk) pairs of the PV phase per thread

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
  int block_size, num_heads, group, num_splits;
  float scale_log2;
};

template <typename E>
__device__ __forceinline__ void load8(const E* src, float (&dst)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(src);
  const E* e = reinterpret_cast<const E*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) dst[i] = cu::Elem<E>::to_float(e[i]);
}

template <typename E>
__device__ __forceinline__ void store8(E* dst, const float (&src)[8], float scale) {
  uint4 raw;
  E* e = reinterpret_cast<E*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) e[i] = cu::Elem<E>::from_float(src[i] * scale);
  *reinterpret_cast<uint4*>(dst) = raw;
}

template <typename E, int D>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(const DecodeParams p) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row; 16 lanes serve one key
  static_assert(kChunks <= 16, "head_dim up to 128");
  extern __shared__ float smem[];
  const int G = p.group;
  float* q_s = smem;              // [G][D], fp32
  float* score = smem + G * D;    // [G][kPartition]
  __shared__ float max_s[kMaxGroup], sum_s[kMaxGroup];

  const int split = blockIdx.x, kv_head = blockIdx.y, seq = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int len = p.seq_lens[seq];
  const int t0 = split * kPartition, t1 = min(len, t0 + kPartition);
  const int n = max(t1 - t0, 0);
  const int h0 = kv_head * G;
  const E* q = static_cast<const E*>(p.q) + int64_t(seq) * p.q_row_stride;
  const E* k_cache = static_cast<const E*>(p.k_cache) + kv_head * D;
  const E* v_cache = static_cast<const E*>(p.v_cache) + kv_head * D;
  const int32_t* table = p.block_tables + int64_t(seq) * p.block_table_stride;
  auto slot_of = [&](int t) { return int64_t(table[t / p.block_size]) * p.block_size + t % p.block_size; };

  for (int i = tid; i < G * D; i += kThreads)
    q_s[i] = cu::Elem<E>::to_float(q[int64_t(h0 + i / D) * p.q_head_stride + i % D]);
  __syncthreads();

  // Scores: each half-warp takes one key, a lane one 16-byte chunk of it.
  const int half = lane / 16, c = lane % 16;
  for (int base = t0 + warp * 2; base < t1; base += 2 * (kThreads / 32)) {
    const int t = base + half;
    const bool valid = c < kChunks && t < t1;
    float kf[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (valid) load8(k_cache + slot_of(t) * p.slot_stride + c * 8, kf);
    for (int g = 0; g < G; ++g) {
      float dot = 0.f;
      if (valid) {
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += q_s[g * D + c * 8 + e] * kf[e];
      }
#pragma unroll
      for (int off = 8; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
      if (c == 0 && t < t1) score[g * kPartition + t - t0] = dot * p.scale_log2;
    }
  }
  __syncthreads();

  // Softmax of the split, per head (one warp a head).
  for (int g = warp; g < G; g += kThreads / 32) {
    float mx = -INFINITY;
    for (int i = lane; i < n; i += 32) mx = fmaxf(mx, score[g * kPartition + i]);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    float sum = 0.f;
    for (int i = lane; i < n; i += 32) {
      const float e = exp2f(score[g * kPartition + i] - mx);
      score[g * kPartition + i] = e;
      sum += e;
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) {
      max_s[g] = mx;
      sum_s[g] = sum;
    }
  }
  __syncthreads();

  // P V: each thread accumulates one (head, chunk) pair over the split's tokens.
#pragma unroll
  for (int pi = 0; pi < kMaxPairsPerThread; ++pi) {
    const int idx = tid + pi * kThreads;
    if (idx >= G * kChunks) break;
    const int g = idx / kChunks, cc = idx % kChunks;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll 4
    for (int t = t0; t < t1; ++t) {
      float vf[8];
      load8(v_cache + slot_of(t) * p.slot_stride + cc * 8, vf);
      const float w = score[g * kPartition + t - t0];
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += w * vf[e];
    }
    const int h = h0 + g;
    if (p.num_splits == 1) {
      const float l = sum_s[g];
      store8(static_cast<E*>(p.out) + int64_t(seq) * p.o_row_stride + int64_t(h) * p.o_head_stride + cc * 8, acc,
             l > 0.f ? 1.f / l : 0.f);
    } else {
      const int64_t row = (int64_t(seq) * p.num_heads + h) * p.num_splits + split;
#pragma unroll
      for (int e = 0; e < 8; ++e) p.part_out[row * D + cc * 8 + e] = acc[e];
      if (cc == 0) {
        p.part_max[row] = max_s[g];
        p.part_sum[row] = sum_s[g];
      }
    }
  }
}

// Merges the splits of one (sequence, head): weights exp2(max_i - max) rescale each partial sum.
template <typename E, int D>
__global__ void __launch_bounds__(kThreads) paged_decode_merge_kernel(const DecodeParams p) {
  const int h = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
  const int64_t row0 = (int64_t(seq) * p.num_heads + h) * p.num_splits;
  float mx = -INFINITY;
  for (int i = 0; i < p.num_splits; ++i) mx = fmaxf(mx, p.part_max[row0 + i]);
  float sum = 0.f, acc = 0.f;
  if (mx != -INFINITY) {
    for (int i = 0; i < p.num_splits; ++i) {
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
  const size_t smem = size_t(p.group) * (D + kPartition) * sizeof(float);
  const dim3 grid(p.num_splits, num_kv_heads, num_seqs);
  paged_decode_kernel<E, D><<<grid, kThreads, smem, stream>>>(p);
  cu::check_launch(kOp);
  if (p.num_splits > 1) {
    paged_decode_merge_kernel<E, D><<<dim3(p.num_heads, num_seqs), kThreads, 0, stream>>>(p);
    cu::check_launch(kOp);
  }
}

template <typename E>
void launch_head_dim(int64_t head_dim, DecodeParams& p, int num_seqs, int num_kv_heads, cudaStream_t stream) {
  switch (head_dim) {
    case 80: return launch<E, 80>(p, num_seqs, num_kv_heads, stream);
    case 128: return launch<E, 128>(p, num_seqs, num_kv_heads, stream);
    default: detail::fail(kOp, "head_dim ", head_dim, " has no CUDA kernel (80 and 128 have)");
  }
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
  const at::Tensor q = q_in.stride(2) == 1 && q_in.stride(1) % 8 == 0 ? q_in : q_in.contiguous();
  const bool out_ok = out.is_contiguous();
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
  p.num_splits = static_cast<int>(std::max<int64_t>(1, (max_seq_len + kPartition - 1) / kPartition));
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
