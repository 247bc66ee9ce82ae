// linear at decode batch sizes on the GPU: out [M, N] = x [M, K] · weight [N, K]ᵀ + bias, M <= 8.
// Bandwidth-bound: every weight byte is read once, with 16-byte streaming loads (no L1 allocation,
// L2 evict-first: the weights are read once per step and should not push out the activations).
// The products run on the tensor cores (mma m16n8k16, fp32 accumulators): a CUDA-core dot product
// needs ~M·8 FMAs and M·8 conversions of x per 16 weight bytes, which at M = 8 is about the SM's
// whole issue rate at full HBM bandwidth; one mma covers 16 weight rows × 16 k × 8 rows of x.
//
// Fragments straight from global memory: lane (g = lane / 4, t = lane % 4) loads 8 consecutive
// weight elements k0 + 8t .. 8t + 7 of rows g and g + 8 of its 16-row tile, and the same 8 elements
// of x's row g (zeros for g >= M). The dot product does not care in which order k is summed, so the
// 32 elements of a k block are assigned to the k slots of two mma as the fragment layout wants
// them; A and B use the same assignment (it depends on t alone), so each slot pairs weight k with
// x k. A CTA of 8 (16 where N is small) warps owns one or two 16-row tiles and splits K between its
// warps; their partial sums meet in shared memory, where the bias is added in fp32 and the sum is
// rounded once.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "linear";
constexpr int kTileRows = 16;  // weight rows per mma (its m)
constexpr int kXRows = 8;      // rows of x per mma (its n): the most the kernel takes

// An L2 policy for data read once: its lines are evicted first.
__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}

// A streamed 16-byte weight read: read-only path, no L1 allocation, evict-first in the L2. Zeros
// where pred is false (rows past N, vectors past K), predicated inside the asm: no branches.
__device__ __forceinline__ uint4 load_weight(const void* ptr, uint64_t policy, bool pred) {
  uint4 r;
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
      " mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
      " @p ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %6;\n}\n"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(ptr), "r"(int(pred)), "l"(policy));
  return r;
}

// x is read by every CTA: a plain cached read-only load (L1 and L2 keep it); zeros where pred is
// false (rows of the mma past M, vectors past K).
__device__ __forceinline__ uint4 load_x(const void* ptr, bool pred) {
  uint4 r;
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
      " mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
      " @p ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(ptr), "r"(int(pred)));
  return r;
}

// kWarps warps split K; kTiles 16-row tiles per CTA; kUnroll 32-element k blocks per warp step
// (kTiles · 2 · kUnroll weight loads and kUnroll x loads in flight per lane). m: rows of x (1..8);
// k a multiple of 8. The launch bound (16 warps per SM, so up to 128 registers) lets ptxas spend
// the registers (80-88) that keep every load of a step ahead of the step's first mma; left to its
// own choice (64) it issued some x loads after the first mma: a second round trip per step.
template <typename E, int kWarps, int kTiles, int kUnroll>
__global__ void __launch_bounds__(kWarps * 32, 16 / kWarps)
    linear_kernel(const E* __restrict__ x, const E* __restrict__ weight, const E* __restrict__ bias,
                  E* __restrict__ out, int m, int n, int k) {
  constexpr int kRows = kTiles * kTileRows;
  // [warp][x row][weight row]; rows padded to 4 mod 16 words, so a warp's 32 stores hit 32 banks.
  __shared__ float partial[kWarps][kXRows][kRows + 4];
  cu::wait_for_previous_grid();  // launched dependent: the norm or activation before it may be finishing
  cu::allow_next_grid();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t row0 = int64_t(blockIdx.x) * kRows;
  const int chunks = k / 8;  // 16-byte vectors per row
  // The warp's share of the 32-element k blocks: contiguous and balanced to one block.
  const int blocks = (chunks + 3) / 4;
  const int begin = int(int64_t(blocks) * warp / kWarps), end = int(int64_t(blocks) * (warp + 1) / kWarps);
  const uint64_t policy = evict_first_policy();

  const E* wrow[kTiles][2];
  bool wok[kTiles][2];
#pragma unroll
  for (int tile = 0; tile < kTiles; ++tile)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t r = row0 + tile * kTileRows + h * 8 + g;
      wok[tile][h] = r < n;
      wrow[tile][h] = weight + (wok[tile][h] ? r : 0) * int64_t(k);
    }
  const bool xok = g < m;
  const E* xrow = x + (xok ? g : 0) * int64_t(k);

  float acc[kTiles][4];
#pragma unroll
  for (int tile = 0; tile < kTiles; ++tile) acc[tile][0] = acc[tile][1] = acc[tile][2] = acc[tile][3] = 0.f;

  for (int block = begin; block < end; block += kUnroll) {
    uint4 a[kUnroll][kTiles][2], b[kUnroll];
    // All loads of the step first, then the products: they are in flight together.
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = (block + u) * 4 + t;  // this lane's 16-byte vector of the rows
      const bool cok = block + u < end && c < chunks;
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          a[u][tile][h] = load_weight(wrow[tile][h] + int64_t(c) * 8, policy, cok && wok[tile][h]);
      b[u] = load_x(xrow + int64_t(c) * 8, cok && xok);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
        const uint4& lo = a[u][tile][0];  // row g
        const uint4& hi = a[u][tile][1];  // row g + 8
        // k slots (2t, 2t+1 | 2t+8, 2t+9) of the first mma: the lane's elements 0,1 | 2,3; of the
        // second: 4,5 | 6,7. x's fragment takes the same elements of its row.
        const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};
        const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};
        cu::mma_16816<E>(acc[tile], a0, b[u].x, b[u].y);
        cu::mma_16816<E>(acc[tile], a1, b[u].z, b[u].w);
      }
  }

  // Accumulator layout: acc[0], acc[1] = weight row g, x rows 2t, 2t+1; acc[2], acc[3] = row g + 8.
#pragma unroll
  for (int tile = 0; tile < kTiles; ++tile) {
    const int r = tile * kTileRows + g;
    partial[warp][2 * t][r] = acc[tile][0];
    partial[warp][2 * t + 1][r] = acc[tile][1];
    partial[warp][2 * t][r + 8] = acc[tile][2];
    partial[warp][2 * t + 1][r + 8] = acc[tile][3];
  }
  __syncthreads();
  using T = cu::Elem<E>;
  for (int i = threadIdx.x; i < kXRows * kRows; i += kWarps * 32) {
    const int col = i / kRows, r = i % kRows;  // col: the row of x; r: the weight row in the CTA
    const int64_t row = row0 + r;
    if (col >= m || row >= n) continue;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][col][r];
    if (bias != nullptr) sum += T::to_float(bias[row]);
    out[int64_t(col) * n + row] = T::from_float(sum);
  }
}

}  // namespace

void linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& out) {
  const int64_t m = x.size(0), k = x.size(1), n = weight.size(0);
  if (m < 1 || m > kXRows || k % 8 != 0 || k < 8 || n < 1)
    detail::fail(kOp, "the CUDA kernel takes 1 to ", kXRows, " rows and K a positive multiple of 8, got x ", x.sizes(),
                 " and weight ", weight.sizes());
  if (k > 0x7fffffff || n > 0x7fffffff) detail::fail(kOp, "weight ", weight.sizes(), " is too large");
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t tiles = (n + kTileRows - 1) / kTileRows;
  // Two tiles per CTA halve the x reads per weight byte (x is half the weight traffic at M = 8)
  // where N still gives every SM a CTA. Where the tiles do not even fill the SMs once (N <= 2112 on
  // an H100: the 3B's o and down projections), 16 warps split K, doubling the bytes in flight.
  const int shape = m > 4 && (tiles + 1) / 2 >= sms ? 2 : tiles <= sms ? 1 : 0;
  const auto launch = [&](auto tag) {
    using E = decltype(tag);
    const E* b = bias.defined() ? static_cast<const E*>(bias.data_ptr()) : nullptr;
    const int rows = shape == 2 ? 2 * kTileRows : kTileRows;
    const int warps = shape == 1 ? 16 : 8;
    const dim3 grid(static_cast<unsigned>((n + rows - 1) / rows));
    const auto kernel = shape == 2 ? linear_kernel<E, 8, 2, 2> : shape == 1 ? linear_kernel<E, 16, 1, 4>
                                                                            : linear_kernel<E, 8, 1, 4>;
    cu::launch_dependent(kOp, kernel, grid, dim3(warps * 32), 0, stream, static_cast<const E*>(x.data_ptr()),
                         static_cast<const E*>(weight.data_ptr()), b, static_cast<E*>(out.data_ptr()),
                         static_cast<int>(m), static_cast<int>(n), static_cast<int>(k));
  };
  switch (x.scalar_type()) {
    case at::kBFloat16: launch(__nv_bfloat16()); break;
    case at::kHalf: launch(__half()); break;
    default: detail::fail(kOp, "the CUDA kernel takes bf16 or fp16, got ", x.scalar_type());
  }
}

}  // namespace qwenvl::kernels::cuda
