// Token selection on the GPU: one CTA of 1024 threads per row, the row processed in place in global
// memory (L2-resident) in a few passes. top-k is an exact radix select on order-preserving keys;
// top-p a radix search on the same keys for the first value whose cumulative probability (summed in
// 2^-62 fixed point: exact and order-independent, so deterministic) exceeds 1 - top_p; the draw an
// exponential race with Philox variates keyed by (seed, step, index).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cfloat>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"
#include "kernels/philox.h"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "sample";
constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

struct RowParams {
  float temperature;
  float top_p_threshold;  // fp32(1 - top_p): remove while the cumulative is <= this
  float min_p;
  float penalty;
  int do_sample, use_temperature, use_top_p, use_min_p, use_penalty;
  int64_t top_k;  // 0: off (also when >= vocab)
  uint64_t seed, step;
};

__device__ __forceinline__ uint32_t key_of(float x) {
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float float_of(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
__device__ __forceinline__ unsigned long long fixed_of(float p) { return __float2ull_rz(p * 0x1p62f); }
__device__ __forceinline__ float float_of_fixed(unsigned long long s) {
  return __double2float_rn(__ull2double_rn(s) * 0x1p-62);
}

struct Shared {
  float red_f[kWarps];
  int red_i[kWarps];
  unsigned int hist[256];
  unsigned long long mass[256];
  float bcast_f;
  int bcast_i;
  unsigned int bcast_u[4];
  unsigned long long bcast_ull;
  int scan[kThreads];
};

__device__ float block_max(Shared& sh, float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.red_f[threadIdx.x / 32] = v;
  __syncthreads();
  float r = sh.red_f[0];
  for (int w = 1; w < kWarps; ++w) r = fmaxf(r, sh.red_f[w]);
  return r;
}

__device__ float block_sum(Shared& sh, float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.red_f[threadIdx.x / 32] = v;
  __syncthreads();
  float r = 0.f;
  for (int w = 0; w < kWarps; ++w) r += sh.red_f[w];
  return r;
}

__device__ int block_count(Shared& sh, int v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.red_i[threadIdx.x / 32] = v;
  __syncthreads();
  int r = 0;
  for (int w = 0; w < kWarps; ++w) r += sh.red_i[w];
  return r;
}

// (value, index): the larger value wins, the smaller index on ties. Returns the index to all.
__device__ int block_argmax(Shared& sh, float v, int i) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh.red_f[threadIdx.x / 32] = v, sh.red_i[threadIdx.x / 32] = i;
  __syncthreads();
  float bv = sh.red_f[0];
  int bi = sh.red_i[0];
  for (int w = 1; w < kWarps; ++w)
    if (sh.red_f[w] > bv || (sh.red_f[w] == bv && sh.red_i[w] < bi)) bv = sh.red_f[w], bi = sh.red_i[w];
  return bi;
}

// Exclusive prefix sum of one int per thread (Hillis-Steele in shared memory).
__device__ int block_exclusive_scan(Shared& sh, int v) {
  __syncthreads();
  sh.scan[threadIdx.x] = v;
  __syncthreads();
  for (int o = 1; o < kThreads; o *= 2) {
    const int add = threadIdx.x >= o ? sh.scan[threadIdx.x - o] : 0;
    __syncthreads();
    sh.scan[threadIdx.x] += add;
    __syncthreads();
  }
  return sh.scan[threadIdx.x] - v;
}

// The first index whose value is the row's max (NaN-free rows).
__device__ int row_argmax(Shared& sh, const float* x, int vocab) {
  float bv = -INFINITY;
  int bi = vocab;
  for (int i = threadIdx.x; i < vocab; i += kThreads)
    if (x[i] > bv || bi == vocab) bv = x[i], bi = i;
  return block_argmax(sh, bv, bi);
}

// Removes the `drop` lowest-index entries whose key is `key` (a stable sort's order among ties).
__device__ void drop_lowest_ties(Shared& sh, float* x, int vocab, uint32_t key, int drop) {
  const int chunk = (vocab + kThreads - 1) / kThreads;
  const int begin = min(vocab, int(threadIdx.x) * chunk), end = min(vocab, begin + chunk);
  int mine = 0;
  for (int i = begin; i < end; ++i) mine += key_of(x[i]) == key;
  int rank = block_exclusive_scan(sh, mine);
  for (int i = begin; i < end && rank < drop; ++i)
    if (key_of(x[i]) == key) x[i] = -INFINITY, ++rank;
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads, 1)
    sample_kernel(float* __restrict__ logits, int vocab, const RowParams* __restrict__ params,
                  const int64_t* __restrict__ seen, const int64_t* __restrict__ seen_start,
                  const int64_t* __restrict__ seen_len, int64_t* __restrict__ tokens) {
  extern __shared__ unsigned int seen_bits[];  // one bit per vocabulary entry
  __shared__ Shared sh;
  const int row = blockIdx.x;
  const RowParams p = params[row];
  float* x = logits + int64_t(row) * vocab;

  // Repetition penalty, once per distinct id: the first thread to set an id's bit owns it.
  if (p.use_penalty && seen_len[row] > 0) {
    const int words = (vocab + 31) / 32;
    for (int w = threadIdx.x; w < words; w += kThreads) seen_bits[w] = 0;
    __syncthreads();
    const int64_t* ids = seen + seen_start[row];
    for (int64_t j = threadIdx.x; j < seen_len[row]; j += kThreads) {
      const int64_t id = ids[j];
      if (id < 0 || id >= vocab) continue;
      const unsigned bit = 1u << (id & 31);
      if (atomicOr(&seen_bits[id >> 5], bit) & bit) continue;
      const float v = x[id];
      x[id] = v < 0.f ? __fmul_rn(v, p.penalty) : __fdiv_rn(v, p.penalty);
    }
    __syncthreads();
  }
  if (!p.do_sample) {
    const int best = row_argmax(sh, x, vocab);
    if (threadIdx.x == 0) tokens[row] = best;
    return;
  }
  if (p.use_temperature) {
    for (int i = threadIdx.x; i < vocab; i += kThreads) x[i] = __fdiv_rn(x[i], p.temperature);
    __syncthreads();
  }

  // top-k: the k-th largest key, 8 bits at a time from the top.
  if (p.top_k > 0 && p.top_k < vocab) {
    uint32_t prefix = 0, mask = 0;
    int remaining = static_cast<int>(p.top_k);
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = threadIdx.x; d < 256; d += kThreads) sh.hist[d] = 0;
      __syncthreads();
      for (int i = threadIdx.x; i < vocab; i += kThreads) {
        const uint32_t k = key_of(x[i]);
        if ((k & mask) == prefix) atomicAdd(&sh.hist[(k >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        int above = 0, d = 255;
        for (; d > 0 && above + int(sh.hist[d]) < remaining; --d) above += sh.hist[d];
        sh.bcast_u[0] = d;
        sh.bcast_i = remaining - above;
      }
      __syncthreads();
      prefix |= sh.bcast_u[0] << shift;
      mask |= 255u << shift;
      remaining = sh.bcast_i;
      __syncthreads();
    }
    const float kth = float_of(prefix);
    for (int i = threadIdx.x; i < vocab; i += kThreads)
      if (x[i] < kth) x[i] = -INFINITY;
    __syncthreads();
  }

  // top-p: find the smallest key K whose cumulative probability (all keys <= K) exceeds the
  // threshold; keys below K go, and of the ties at K the lowest-index ones while the cumulative
  // stays <= the threshold.
  if (p.use_top_p) {
    const float m = block_max(sh, [&] {
      float v = -INFINITY;
      for (int i = threadIdx.x; i < vocab; i += kThreads) v = fmaxf(v, x[i]);
      return v;
    }());
    float part = 0.f;
    for (int i = threadIdx.x; i < vocab; i += kThreads) part += expf(x[i] - m);
    const float inv = __fdiv_rn(1.f, block_sum(sh, part));
    uint32_t prefix = 0, mask = 0;
    unsigned long long base = 0;
    bool found = true;
    for (int shift = 24; shift >= 0 && found; shift -= 8) {
      for (int d = threadIdx.x; d < 256; d += kThreads) sh.mass[d] = 0;
      __syncthreads();
      for (int i = threadIdx.x; i < vocab; i += kThreads) {
        const float v = x[i];
        const uint32_t k = key_of(v);
        if ((k & mask) == prefix) atomicAdd(&sh.mass[(k >> shift) & 255u], fixed_of(__fmul_rn(expf(v - m), inv)));
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        unsigned long long cum = base;
        int d = 0;
        for (; d < 256; ++d) {
          if (float_of_fixed(cum + sh.mass[d]) > p.top_p_threshold) break;
          cum += sh.mass[d];
        }
        sh.bcast_i = d;
        sh.bcast_ull = cum;
      }
      __syncthreads();
      found = sh.bcast_i < 256;
      prefix |= uint32_t(sh.bcast_i & 255) << shift;
      mask |= 255u << shift;
      base = sh.bcast_ull;
      __syncthreads();
    }
    int drop;
    if (found) {
      const unsigned long long each = fixed_of(__fmul_rn(expf(float_of(prefix) - m), inv));
      drop = 0;
      while (float_of_fixed(base + (unsigned long long)(drop + 1) * each) <= p.top_p_threshold) ++drop;
    } else {  // everything at or under the threshold: keep one largest, the last in stable order
      prefix = key_of(m);
      int ties = 0;
      for (int i = threadIdx.x; i < vocab; i += kThreads) ties += x[i] == m;
      drop = block_count(sh, ties) - 1;
    }
    for (int i = threadIdx.x; i < vocab; i += kThreads)
      if (key_of(x[i]) < prefix) x[i] = -INFINITY;
    __syncthreads();
    if (drop > 0) drop_lowest_ties(sh, x, vocab, prefix, drop);
  }

  // min-p: probabilities below min_p * the largest go; the first largest always stays.
  if (p.use_min_p) {
    const int first_max = row_argmax(sh, x, vocab);
    const float m = x[first_max];
    float part = 0.f;
    for (int i = threadIdx.x; i < vocab; i += kThreads) part += expf(x[i] - m);
    const float inv = __fdiv_rn(1.f, block_sum(sh, part));
    const float threshold = __fmul_rn(p.min_p, inv);  // min_p * (exp(0) * inv)
    for (int i = threadIdx.x; i < vocab; i += kThreads)
      if (i != first_max && __fmul_rn(expf(x[i] - m), inv) < threshold) x[i] = -INFINITY;
    __syncthreads();
  }

  // The draw: argmax of p_i / E_i.
  const float m = block_max(sh, [&] {
    float v = -INFINITY;
    for (int i = threadIdx.x; i < vocab; i += kThreads) v = fmaxf(v, x[i]);
    return v;
  }());
  float bv = -1.f;
  int bi = vocab;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float score = __fdiv_rn(expf(x[i] - m), philox::exponential(p.seed, p.step, uint64_t(i)));
    if (score > bv) bv = score, bi = i;
  }
  const int best = block_argmax(sh, bv, bi);
  if (threadIdx.x == 0) tokens[row] = best;
}

}  // namespace

at::Tensor sample(at::Tensor& logits, const std::vector<RowSampling>& rows, const at::Tensor& seen_ids,
                  const at::Tensor& seen_start, const at::Tensor& seen_len) {
  const int64_t n = logits.size(0), vocab = logits.size(1);
  if (vocab > (int64_t(1) << 30)) detail::fail(kOp, "vocabulary too large: ", vocab);
  at::Tensor tokens = at::empty({n}, logits.options().dtype(at::kLong));
  if (n == 0) return tokens;
  // Pinned, so the copy is queued: from pageable memory it would wait for the stream first (the
  // engine queues the next decode step before the host reads this pick).
  at::Tensor host = at::empty({n * int64_t(sizeof(RowParams))}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  auto* rp = reinterpret_cast<RowParams*>(host.data_ptr());
  for (int64_t s = 0; s < n; ++s) {
    const RowSampling& c = rows[size_t(s)];
    RowParams q{};
    q.do_sample = c.do_sample;
    q.temperature = static_cast<float>(c.temperature);
    q.use_temperature = c.temperature != 1.0;
    q.top_k = c.top_k >= vocab ? 0 : c.top_k;
    q.use_top_p = c.top_p < 1.0;
    q.top_p_threshold = static_cast<float>(1.0 - c.top_p);
    q.use_min_p = c.min_p > 0.0;
    q.min_p = static_cast<float>(c.min_p);
    q.use_penalty = c.repetition_penalty != 1.0;
    q.penalty = static_cast<float>(c.repetition_penalty);
    q.seed = c.seed;
    q.step = c.step;
    rp[s] = q;
  }
  const at::Tensor params = host.to(logits.device(), at::kByte, /*non_blocking=*/true);
  const c10::cuda::CUDAGuard guard(logits.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(logits.device().index()).stream();
  const size_t bitmap = size_t((vocab + 31) / 32) * sizeof(unsigned int);
  cu::check_cuda(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bitmap)), kOp,
                 "vocabulary bitmap does not fit in shared memory");
  sample_kernel<<<static_cast<unsigned>(n), kThreads, bitmap, stream>>>(
      logits.data_ptr<float>(), static_cast<int>(vocab), reinterpret_cast<const RowParams*>(params.data_ptr()),
      seen_ids.data_ptr<int64_t>(), seen_start.data_ptr<int64_t>(), seen_len.data_ptr<int64_t>(),
      tokens.data_ptr<int64_t>());
  cu::check_launch(kOp);
  return tokens;
}

}  // namespace qwenvl::kernels::cuda
