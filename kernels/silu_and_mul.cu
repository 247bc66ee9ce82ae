// silu_and_mul on the GPU: elementwise over [rows, I], 16-byte loads where the rows allow it. silu
// is x / (1 + expf(-x)) in fp32 with precise expf and IEEE division (as libtorch's CUDA silu), then
// rounded to the activation dtype; the product is rounded once more.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "silu_and_mul";
constexpr int kThreads = 256;

template <typename E>
__device__ __forceinline__ E silu_mul(E g, E u) {
  using T = cu::Elem<E>;
  const float x = T::to_float(g);
  const float s = T::to_float(T::from_float(__fdiv_rn(x, __fadd_rn(1.f, expf(-x)))));
  return T::from_float(__fmul_rn(s, T::to_float(u)));
}

// kVec elements per access; columns counted in elements, strides in elements.
template <typename E, int kVec>
__global__ void __launch_bounds__(kThreads) silu_and_mul_kernel(const E* __restrict__ gate, const E* __restrict__ up,
                                                                E* __restrict__ out, int64_t cols, int64_t gate_stride,
                                                                int64_t up_stride) {
  struct alignas(sizeof(E) * kVec) Pack { E v[kVec]; };
  cu::wait_for_previous_grid();  // launched dependent: the gate/up projection may still be finishing
  const int64_t row = blockIdx.x;
  const E* g = gate + row * gate_stride;
  const E* u = up + row * up_stride;
  E* o = out + row * cols;
  for (int64_t c = (int64_t(blockIdx.y) * kThreads + threadIdx.x) * kVec; c < cols;
       c += int64_t(gridDim.y) * kThreads * kVec) {
    const Pack gp = *reinterpret_cast<const Pack*>(g + c);
    const Pack up_p = *reinterpret_cast<const Pack*>(u + c);
    Pack op;
#pragma unroll
    for (int i = 0; i < kVec; ++i) op.v[i] = silu_mul(gp.v[i], up_p.v[i]);
    *reinterpret_cast<Pack*>(o + c) = op;
  }
}

at::Tensor as_rows(const at::Tensor& t) { return t.dim() == 1 ? t.view({1, t.size(0)}) : t.flatten(0, -2); }

}  // namespace

void silu_and_mul(const at::Tensor& gate_in, const at::Tensor& up_in, at::Tensor& out) {
  at::Tensor gate = as_rows(gate_in), up = as_rows(up_in);
  if (gate.stride(1) != 1) gate = gate.contiguous();
  if (up.stride(1) != 1) up = up.contiguous();
  const int64_t rows = gate.size(0), cols = gate.size(1);
  if (rows > 0x7fffffff) detail::fail(kOp, "too many rows: ", rows);
  const c10::cuda::CUDAGuard guard(gate.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(gate.device().index()).stream();
  const auto launch = [&](auto tag) {
    using E = decltype(tag);
    constexpr int kVec = 16 / sizeof(E);
    const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    const bool vec = cols % kVec == 0 && gate.stride(0) % kVec == 0 && up.stride(0) % kVec == 0 &&
                     aligned(gate.data_ptr()) && aligned(up.data_ptr()) && aligned(out.data_ptr());
    const int64_t per_block = int64_t(kThreads) * (vec ? kVec : 1);
    const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(std::min<int64_t>((cols + per_block - 1) / per_block, 65535)));
    const auto kernel = vec ? silu_and_mul_kernel<E, kVec> : silu_and_mul_kernel<E, 1>;
    cu::launch_dependent(kOp, kernel, grid, dim3(kThreads), 0, stream, static_cast<const E*>(gate.data_ptr()),
                         static_cast<const E*>(up.data_ptr()), static_cast<E*>(out.data_ptr()), cols, gate.stride(0),
                         up.stride(0));
  };
  switch (gate.scalar_type()) {
    case at::kBFloat16: launch(__nv_bfloat16()); break;
    case at::kHalf: launch(__half()); break;
    case at::kFloat: launch(float()); break;
    default: detail::fail(kOp, "the CUDA kernel takes bf16, fp16 or fp32, got ", gate.scalar_type());
  }
}

}  // namespace qwenvl::kernels::cuda
