// Rotary embeddings on the GPU: one CTA per token computes that token's cos/sin once (precise
// cosf/sinf, as libtorch's CUDA cos/sin) and rotates every head of q and k with them. Products and
// sums use explicit round-to-nearest intrinsics so that no FMA contraction changes the reference's
// rounding. The fused variant also writes the token's rotated k rows and its v rows to its cache
// slot, which saves write_kv_cache's launch; it reads and writes 16 bytes at a time where the
// tensors allow.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "rotary";
constexpr const char* kFusedOp = "multi_axis_rotary_and_write_kv";
constexpr int kThreads = 256;
constexpr int kMaxFreqs = 256;  // d up to 512

struct RotaryParams {
  float inv_freq[kMaxFreqs];
  int section_end[4];  // multi-axis: cumulative ends of the sections
  int axes;
  int half;  // d / 2
  int q_heads, k_heads;
  int64_t tokens;
  int64_t q_in_t, q_in_h, k_in_t, k_in_h;  // element strides of token and head
  int64_t q_out_t, q_out_h, k_out_t, k_out_h;
  int64_t v_t, v_h;     // the fused cache write: v's strides
  int64_t num_slots;    // and the cache's slots (num_blocks * block_size)
};

// V consecutive elements, moved as one access (16 bytes on the vectorised path).
template <typename E, int V>
struct alignas(sizeof(E) * V) Pack {
  E x[V];
};

// Multi-axis (kTwoD false): cos/sin rounded to E and the rotation rounded in E after each product
// and the sum. 2-D: fp32 cos/sin and fp32 rotation, one cast at the end. Each thread rotates V
// pairs (x[j + i], x[j + i + half]). With k_cache set, the token's rotated k rows and its v rows
// also go to its slot; a negative slot or one past the cache writes nothing, as write_kv_cache.
template <typename E, bool kTwoD, int V>
__global__ void __launch_bounds__(kThreads) rotary_kernel(const E* q_in, const E* k_in, E* q_out, E* k_out,
                                                          const int64_t* __restrict__ positions, const E* v_in,
                                                          E* k_cache, E* v_cache,
                                                          const int64_t* __restrict__ slot_mapping,
                                                          const __grid_constant__ RotaryParams p) {
  using T = cu::Elem<E>;
  using P = Pack<E, V>;
  __shared__ float cos_s[kMaxFreqs], sin_s[kMaxFreqs];
  cu::wait_for_previous_grid();  // launched dependent: the projection before it may still be finishing
  const int64_t t = blockIdx.x;
  const int half = p.half;
  for (int j = threadIdx.x; j < half; j += kThreads) {
    float angle;
    if constexpr (kTwoD) {
      const int quarter = half / 2;
      const int64_t pos = positions[t * 2 + (j < quarter ? 0 : 1)];
      angle = __fmul_rn(__ll2float_rn(pos), p.inv_freq[j < quarter ? j : j - quarter]);
    } else {
      int axis = 0;
      while (axis + 1 < p.axes && j >= p.section_end[axis]) ++axis;
      angle = __fmul_rn(__ll2float_rn(positions[axis * p.tokens + t]), p.inv_freq[j]);
    }
    float c = cosf(angle), s = sinf(angle);
    if constexpr (!kTwoD) {
      c = T::to_float(T::from_float(c));
      s = T::to_float(T::from_float(s));
    }
    cos_s[j] = c;
    sin_s[j] = s;
  }
  int64_t slot = -1;
  if (k_cache != nullptr) {
    slot = slot_mapping[t];
    if (slot >= p.num_slots) slot = -1;
  }
  __syncthreads();
  const int chunks = half / V;  // accesses per half row
  const int q_items = p.q_heads * chunks;
  const int rotate_items = q_items + (k_in != nullptr ? p.k_heads * chunks : 0);
  const int total = rotate_items + (slot >= 0 ? p.k_heads * 2 * chunks : 0);
  const int64_t d = 2 * half;
  for (int idx = threadIdx.x; idx < total; idx += kThreads) {
    if (idx >= rotate_items) {  // a piece of a v row, copied to the cache
      const int rel = idx - rotate_items;
      const int h = rel / (2 * chunks), j = (rel - h * 2 * chunks) * V;
      *reinterpret_cast<P*>(v_cache + (slot * p.k_heads + h) * d + j) =
          *reinterpret_cast<const P*>(v_in + t * p.v_t + h * p.v_h + j);
      continue;
    }
    const bool is_q = idx < q_items;
    const int rel = is_q ? idx : idx - q_items;
    const int h = rel / chunks, j = (rel - h * chunks) * V;
    const E* src = is_q ? q_in + t * p.q_in_t + h * p.q_in_h : k_in + t * p.k_in_t + h * p.k_in_h;
    E* dst = is_q ? q_out + t * p.q_out_t + h * p.q_out_h : k_out + t * p.k_out_t + h * p.k_out_h;
    const P a = *reinterpret_cast<const P*>(src + j), b = *reinterpret_cast<const P*>(src + j + half);
    P lo, hi;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float x1 = T::to_float(a.x[i]), x2 = T::to_float(b.x[i]);
      const float c = cos_s[j + i], s = sin_s[j + i];
      float o1, o2;
      if constexpr (kTwoD) {
        o1 = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(-x2, s));
        o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
      } else {
        const auto r = [](float v) { return T::to_float(T::from_float(v)); };
        o1 = __fadd_rn(r(__fmul_rn(x1, c)), r(__fmul_rn(-x2, s)));
        o2 = __fadd_rn(r(__fmul_rn(x2, c)), r(__fmul_rn(x1, s)));
      }
      lo.x[i] = T::from_float(o1);
      hi.x[i] = T::from_float(o2);
    }
    *reinterpret_cast<P*>(dst + j) = lo;
    *reinterpret_cast<P*>(dst + j + half) = hi;
    if (!is_q && slot >= 0) {
      E* row = k_cache + (slot * p.k_heads + h) * d;
      *reinterpret_cast<P*>(row + j) = lo;
      *reinterpret_cast<P*>(row + j + half) = hi;
    }
  }
}

// The fused write's tensors; null pointers when there is no cache.
struct CacheWrite {
  const void* v = nullptr;
  void *k_cache = nullptr, *v_cache = nullptr;
  const int64_t* slot_mapping = nullptr;
  bool vectorised = false;
};

bool is_16_byte_aligned(const at::Tensor& t) {
  const int64_t es = t.element_size();
  return (t.stride(0) * es) % 16 == 0 && (t.stride(1) * es) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

void launch(const at::Tensor& q, const at::Tensor& k, at::Tensor& q_out, at::Tensor& k_out,
            const at::Tensor& positions_in, const at::Tensor& inv_freq, const std::vector<int64_t>& sections,
            RotaryParams& p, const CacheWrite& cache) {
  const bool two_d = sections.empty();
  p.half = static_cast<int>(q.size(2) / 2);
  if (p.half > kMaxFreqs) detail::fail(kOp, "the CUDA kernel takes d up to ", 2 * kMaxFreqs, ", got ", q.size(2));
  const at::Tensor inv = inv_freq.contiguous();
  for (int64_t j = 0; j < inv.numel(); ++j) p.inv_freq[j] = inv.data_ptr<float>()[j];
  int end = 0;
  p.axes = static_cast<int>(sections.size());
  for (size_t a = 0; a < sections.size(); ++a) p.section_end[a] = end += static_cast<int>(sections[a]);
  p.q_heads = static_cast<int>(q.size(1));
  p.k_heads = k.defined() ? static_cast<int>(k.size(1)) : 0;
  p.tokens = q.size(0);
  p.q_in_t = q.stride(0), p.q_in_h = q.stride(1), p.q_out_t = q_out.stride(0), p.q_out_h = q_out.stride(1);
  if (k.defined()) p.k_in_t = k.stride(0), p.k_in_h = k.stride(1), p.k_out_t = k_out.stride(0), p.k_out_h = k_out.stride(1);
  const at::Tensor positions = positions_in.contiguous();
  const c10::cuda::CUDAGuard guard(q.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(q.device().index()).stream();
  const auto run = [&](auto tag) {
    using E = decltype(tag);
    constexpr int kVec = 16 / sizeof(E);
    const E* kin = k.defined() ? static_cast<const E*>(k.data_ptr()) : nullptr;
    E* kout = k.defined() ? static_cast<E*>(k_out.data_ptr()) : nullptr;
    // 2-D (the vision tower): 16-byte accesses where q's and k's rows allow, each element's math
    // unchanged (the vision tower's 80-wide heads rotated one element per access took 8% of a
    // 64-frame forward on an H100, 2026-12-07).
    const bool two_d_vectorised = two_d && p.half % kVec == 0 && q.stride(2) == 1 && q_out.stride(2) == 1 &&
                                  is_16_byte_aligned(q) && is_16_byte_aligned(q_out) &&
                                  (!k.defined() || (k.stride(2) == 1 && k_out.stride(2) == 1 &&
                                                    is_16_byte_aligned(k) && is_16_byte_aligned(k_out)));
    const auto kernel = two_d            ? (two_d_vectorised ? rotary_kernel<E, true, kVec> : rotary_kernel<E, true, 1>)
                        : cache.vectorised ? rotary_kernel<E, false, kVec>
                                           : rotary_kernel<E, false, 1>;
    cu::launch_dependent(cache.k_cache != nullptr ? kFusedOp : kOp, kernel, dim3(static_cast<unsigned>(p.tokens)),
                         dim3(kThreads), 0, stream, static_cast<const E*>(q.data_ptr()), kin,
                         static_cast<E*>(q_out.data_ptr()), kout, positions.data_ptr<int64_t>(),
                         static_cast<const E*>(cache.v), static_cast<E*>(cache.k_cache),
                         static_cast<E*>(cache.v_cache), cache.slot_mapping, p);
  };
  switch (q.scalar_type()) {
    case at::kBFloat16: run(__nv_bfloat16()); break;
    case at::kHalf: run(__half()); break;
    case at::kFloat: run(float()); break;
    default: detail::fail(kOp, "the CUDA kernel takes bf16, fp16 or fp32, got ", q.scalar_type());
  }
}

}  // namespace

void rotary(const at::Tensor& q, const at::Tensor& k, at::Tensor& q_out, at::Tensor& k_out,
            const at::Tensor& positions, const at::Tensor& inv_freq, const std::vector<int64_t>& sections) {
  RotaryParams p{};
  launch(q, k, q_out, k_out, positions, inv_freq, sections, p, CacheWrite{});
}

void rotary_and_write_kv(at::Tensor& q, at::Tensor& k, const at::Tensor& v_in, const at::Tensor& positions,
                         const at::Tensor& inv_freq, const std::vector<int64_t>& sections, at::Tensor& k_cache,
                         at::Tensor& v_cache, const at::Tensor& slot_mapping_in) {
  const int64_t es = k.element_size(), d = k.size(2);
  if ((d * es) % 16 != 0)  // as write_kv_cache's kernel
    detail::fail(kFusedOp, "a head row of ", d * es, " bytes is not a multiple of 16 bytes");
  const at::Tensor v = v_in.stride(2) == 1 ? v_in : v_in.contiguous();
  const at::Tensor slot_mapping = slot_mapping_in.contiguous();
  RotaryParams p{};
  p.v_t = v.stride(0), p.v_h = v.stride(1);
  p.num_slots = k_cache.size(0) * k_cache.size(1);
  CacheWrite cache;
  cache.v = v.data_ptr();
  cache.k_cache = k_cache.data_ptr();
  cache.v_cache = v_cache.data_ptr();
  cache.slot_mapping = slot_mapping.data_ptr<int64_t>();
  // Whole 16-byte accesses need 16-byte halves of a head row and 16-byte aligned rows everywhere;
  // anything else takes the one-element path (same arithmetic, same bits).
  cache.vectorised = ((d / 2) * es) % 16 == 0 && is_16_byte_aligned(q) && is_16_byte_aligned(k) &&
                     is_16_byte_aligned(v) && reinterpret_cast<uintptr_t>(k_cache.data_ptr()) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(v_cache.data_ptr()) % 16 == 0;
  launch(q, k, q, k, positions, inv_freq, sections, p, cache);
}

}  // namespace qwenvl::kernels::cuda
