// RMSNorm (optionally after the residual add) on the GPU. Rounding follows HF: residual add
// rounded to the model dtype, fp32 mean of squares and scaling, cast to the model dtype, then the
// product with the weight rounded once more.
// Rows of whole 16-byte vectors take the register path: each thread reads its vectors of x,
// residual and weight once, keeps them in registers across the reduction and writes from there
// (one memory round trip, which is what a decode step's single row waits on). Small rows share a
// CTA, a power-of-two group of lanes per row. Other rows take the generic two-pass kernel.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "rms_norm";
constexpr int kThreads = 256;
constexpr int kRowThreadsMax = 512;  // threads on one row; longer rows take more vectors per thread
constexpr int kMaxVecs = 8;  // vectors per thread: 8 fill the 128 registers 512 threads allow
constexpr int kGroupedThreads = 256;  // CTA of the grouped kernel (rows of at most 32 vectors)

// Generic: one CTA per row, two passes, any hidden and alignment.
template <typename E>
__global__ void __launch_bounds__(kThreads) rms_norm_kernel(const E* __restrict__ x, E* __restrict__ residual,
                                                            const E* __restrict__ weight, E* __restrict__ out,
                                                            int hidden, float eps) {
  using T = cu::Elem<E>;
  cu::wait_for_previous_grid();  // launched dependent: the sublayer before it may still be finishing
  const int64_t base = int64_t(blockIdx.x) * hidden;
  float squares = 0.f;
  for (int i = threadIdx.x; i < hidden; i += kThreads) {
    float h = T::to_float(x[base + i]);
    if (residual != nullptr) {
      const E r = T::from_float(h + T::to_float(residual[base + i]));
      residual[base + i] = r;
      h = T::to_float(r);
    }
    squares += h * h;
  }
  __shared__ float warp_sums[kThreads / 32];
#pragma unroll
  for (int off = 16; off > 0; off /= 2) squares += __shfl_xor_sync(0xffffffffu, squares, off);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = squares;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  const float inv = rsqrtf(total / hidden + eps);
  const E* h_src = residual != nullptr ? residual : x;  // this thread wrote its own residual entries
  for (int i = threadIdx.x; i < hidden; i += kThreads) {
    const E normed = T::from_float(T::to_float(h_src[base + i]) * inv);
    out[base + i] = T::from_float(T::to_float(weight[i]) * T::to_float(normed));
  }
}

// ---- register path ----

template <typename E>
struct Vec {
  static constexpr int kElems = 16 / int(sizeof(E));
  static __device__ __forceinline__ E get(const uint4& v, int i) { return reinterpret_cast<const E*>(&v)[i]; }
  static __device__ __forceinline__ void set(uint4& v, int i, E e) { reinterpret_cast<E*>(&v)[i] = e; }
};

// Butterfly sum over aligned groups of `width` lanes (a power of two): every lane ends with the
// same bits, so all threads of a row scale by the same factor.
__device__ __forceinline__ float group_sum(float v, int width) {
  for (int off = width / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One thread's share of a row: its vectors t, t + stride, ... of h (x after the residual add) and
// of the weight, held in registers from the load to the store.
template <typename E, int kVecs>
struct RowShare {
  uint4 h[kVecs], w[kVecs];

  // Reads everything first (all loads in flight at once), then writes residual = x + residual in
  // E and returns the fp32 sum of squares of the rounded h.
  __device__ __forceinline__ float load(const uint4* x, uint4* residual, const uint4* weight, int nvec, int t,
                                        int stride, bool active) {
    using T = cu::Elem<E>;
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);  // zero bits are 0.0 in every dtype: adds nothing
    uint4 r[kVecs];
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const int v = t + j * stride;
      h[j] = w[j] = r[j] = zero;
      if (active && v < nvec) {
        h[j] = x[v];
        w[j] = weight[v];
        if (residual != nullptr) r[j] = residual[v];
      }
    }
    float squares = 0.f;
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      if (residual != nullptr) {
#pragma unroll
        for (int i = 0; i < Vec<E>::kElems; ++i)
          Vec<E>::set(h[j], i, T::from_float(T::to_float(Vec<E>::get(h[j], i)) + T::to_float(Vec<E>::get(r[j], i))));
        const int v = t + j * stride;
        if (active && v < nvec) residual[v] = h[j];
      }
#pragma unroll
      for (int i = 0; i < Vec<E>::kElems; ++i) {
        const float f = T::to_float(Vec<E>::get(h[j], i));
        squares += f * f;
      }
    }
    return squares;
  }

  __device__ __forceinline__ void store(uint4* out, float inv, int nvec, int t, int stride, bool active) const {
    using T = cu::Elem<E>;
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const int v = t + j * stride;
      if (!active || v >= nvec) continue;
      uint4 o;
#pragma unroll
      for (int i = 0; i < Vec<E>::kElems; ++i) {
        const E normed = T::from_float(T::to_float(Vec<E>::get(h[j], i)) * inv);
        Vec<E>::set(o, i, T::from_float(T::to_float(Vec<E>::get(w[j], i)) * T::to_float(normed)));
      }
      out[v] = o;
    }
  }
};

// One row per CTA of blockDim.x (a multiple of 32, blockDim.x * kVecs >= the row's vectors).
template <typename E, int kVecs>
__global__ void __launch_bounds__(kRowThreadsMax) rms_norm_row_kernel(const E* __restrict__ x, E* __restrict__ residual,
                                                                      const E* __restrict__ weight, E* __restrict__ out,
                                                                      int hidden, float eps) {
  cu::wait_for_previous_grid();
  const int nvec = hidden / Vec<E>::kElems;
  const int64_t base = int64_t(blockIdx.x) * nvec;
  RowShare<E, kVecs> share;
  float squares = share.load(reinterpret_cast<const uint4*>(x) + base,
                             residual != nullptr ? reinterpret_cast<uint4*>(residual) + base : nullptr,
                             reinterpret_cast<const uint4*>(weight), nvec, threadIdx.x, blockDim.x, true);
  __shared__ float warp_sums[kRowThreadsMax / 32];
  squares = group_sum(squares, 32);
  const int lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[threadIdx.x / 32] = squares;
  __syncthreads();
  // Every warp sums the partials itself: one shared read and five shuffles, no second barrier.
  const float total = group_sum(lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.f, 32);
  const float inv = rsqrtf(total / hidden + eps);
  share.store(reinterpret_cast<uint4*>(out) + base, inv, nvec, threadIdx.x, blockDim.x, true);
}

// Rows of at most 32 vectors: `group` lanes (a power of two >= the row's vectors) per row,
// kGroupedThreads / group rows per CTA, so short rows still fill the GPU. Lanes past the last row
// stay for the shuffles and touch no memory.
template <typename E>
__global__ void __launch_bounds__(kGroupedThreads) rms_norm_grouped_kernel(const E* __restrict__ x,
                                                                           E* __restrict__ residual,
                                                                           const E* __restrict__ weight,
                                                                           E* __restrict__ out, int64_t rows,
                                                                           int hidden, int group, float eps) {
  cu::wait_for_previous_grid();
  const int nvec = hidden / Vec<E>::kElems;
  const int64_t row = int64_t(blockIdx.x) * (kGroupedThreads / group) + threadIdx.x / group;
  const bool active = row < rows;
  const int64_t base = (active ? row : 0) * nvec;
  const int t = threadIdx.x % group;
  RowShare<E, 1> share;
  float squares = share.load(reinterpret_cast<const uint4*>(x) + base,
                             residual != nullptr ? reinterpret_cast<uint4*>(residual) + base : nullptr,
                             reinterpret_cast<const uint4*>(weight), nvec, t, group, active);
  const float inv = rsqrtf(group_sum(squares, group) / hidden + eps);
  share.store(reinterpret_cast<uint4*>(out) + base, inv, nvec, t, group, active);
}

template <typename E, int kVecs>
void launch_row_kernel(int64_t rows, int threads, cudaStream_t stream, const E* x, E* residual, const E* weight,
                       E* out, int hidden, float eps) {
  cu::launch_dependent(kOp, rms_norm_row_kernel<E, kVecs>, dim3(static_cast<unsigned>(rows)), dim3(threads), 0, stream,
                       x, residual, weight, out, hidden, eps);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void rms_norm(const at::Tensor& x_in, const at::Tensor& residual, const at::Tensor& weight_in,
              double eps, at::Tensor& out) {
  const at::Tensor x = x_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const int64_t hidden = x.size(-1);
  const int64_t rows = hidden == 0 ? 0 : x.numel() / hidden;
  if (rows == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  const auto launch = [&](auto tag) {
    using E = decltype(tag);
    const E* xp = static_cast<const E*>(x.data_ptr());
    E* rp = residual.defined() ? static_cast<E*>(residual.data_ptr()) : nullptr;
    const E* wp = static_cast<const E*>(weight.data_ptr());
    E* op = static_cast<E*>(out.data_ptr());
    const int h = static_cast<int>(hidden);
    const float e = static_cast<float>(eps);
    const int64_t nvec = hidden / Vec<E>::kElems;
    const bool vectors = hidden % Vec<E>::kElems == 0 && aligned16(xp) && (rp == nullptr || aligned16(rp)) &&
                         aligned16(wp) && aligned16(op);
    if (vectors && nvec <= 32) {
      int group = 1;
      while (group < nvec) group *= 2;
      const int64_t per_cta = kGroupedThreads / group;
      cu::launch_dependent(kOp, rms_norm_grouped_kernel<E>, dim3(static_cast<unsigned>((rows + per_cta - 1) / per_cta)),
                           dim3(kGroupedThreads), 0, stream, xp, rp, wp, op, rows, h, group, e);
    } else if (vectors && nvec <= int64_t(kRowThreadsMax) * kMaxVecs) {
      int vecs = 1;  // the fewest vectors per thread that fit the row in kRowThreadsMax threads
      while (int64_t(vecs) * kRowThreadsMax < nvec) vecs *= 2;
      const int threads = static_cast<int>((nvec + vecs - 1) / vecs + 31) / 32 * 32;
      switch (vecs) {
        case 1: launch_row_kernel<E, 1>(rows, threads, stream, xp, rp, wp, op, h, e); break;
        case 2: launch_row_kernel<E, 2>(rows, threads, stream, xp, rp, wp, op, h, e); break;
        case 4: launch_row_kernel<E, 4>(rows, threads, stream, xp, rp, wp, op, h, e); break;
        default: launch_row_kernel<E, kMaxVecs>(rows, threads, stream, xp, rp, wp, op, h, e); break;
      }
    } else {
      cu::launch_dependent(kOp, rms_norm_kernel<E>, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, stream, xp, rp,
                           wp, op, h, e);
    }
  };
  switch (x.scalar_type()) {
    case at::kBFloat16: launch(__nv_bfloat16()); break;
    case at::kHalf: launch(__half()); break;
    case at::kFloat: launch(float()); break;
    default: detail::fail(kOp, "the CUDA kernel takes bf16, fp16 or fp32, got ", x.scalar_type());
  }
}

}  // namespace qwenvl::kernels::cuda
