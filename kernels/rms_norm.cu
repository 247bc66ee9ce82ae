// RMSNorm (optionally after the residual add) on the GPU: one CTA per row. Rounding follows HF:
// residual add rounded to the model dtype, fp32 mean of squares and scaling, cast to the model
// dtype, then the product with the weight rounded once more.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "rms_norm";
constexpr int kThreads = 256;

template <typename E>
__global__ void __launch_bounds__(kThreads) rms_norm_kernel(const E* __restrict__ x, E* __restrict__ residual,
                                                            const E* __restrict__ weight, E* __restrict__ out,
                                                            int hidden, float eps) {
  using T = cu::Elem<E>;
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
    rms_norm_kernel<E><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        static_cast<const E*>(x.data_ptr()), residual.defined() ? static_cast<E*>(residual.data_ptr()) : nullptr,
        static_cast<const E*>(weight.data_ptr()), static_cast<E*>(out.data_ptr()), static_cast<int>(hidden),
        static_cast<float>(eps));
    cu::check_launch(kOp);
  };
  switch (x.scalar_type()) {
    case at::kBFloat16: launch(__nv_bfloat16()); break;
    case at::kHalf: launch(__half()); break;
    case at::kFloat: launch(float()); break;
    default: detail::fail(kOp, "the CUDA kernel takes bf16, fp16 or fp32, got ", x.scalar_type());
  }
}

}  // namespace qwenvl::kernels::cuda
