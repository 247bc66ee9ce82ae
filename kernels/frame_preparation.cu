// Frame preparation on the GPU, the same integers as the CPU path: conversion to RGB per pixel
// (frame_preparation_math.h), ATen's uint8 antialiased bicubic as two fixed-point passes with uint8
// between them (weights from bicubic_aa_weights, computed on the host as ATen computes them), and
// the table lookup fused with the patchify. One thread per output byte or value: the work is small
// next to the network's, and plain indexing keeps the correspondence with the reference obvious.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "kernels/check.h"
#include "kernels/cuda_utils.cuh"
#include "kernels/frame_preparation.h"
#include "kernels/frame_preparation_cuda.h"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "frame_preparation";
constexpr int kThreads = 256;
constexpr int kFramesPerLaunch = 16;  // frame arguments travel in the launch's parameters

namespace fm = frame_math;

struct FrameBatch {
  fm::FrameArgs frames[kFramesPerLaunch];
};

__global__ void frames_to_rgb_kernel(const FrameBatch batch, int width, int height, int64_t first_frame,
                                     uint8_t* __restrict__ rgb) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= width || y >= height) return;
  uint8_t px[3];
  fm::pixel_to_rgb(batch.frames[blockIdx.z], x, y, px);
  uint8_t* o = rgb + (((first_frame + blockIdx.z) * height + y) * int64_t{width} + x) * 3;
  o[0] = px[0];
  o[1] = px[1];
  o[2] = px[2];
}

// Horizontal pass: out [rows, w_out, 3] from in [rows, w_in, 3]; taps 3 bytes apart.
__global__ void resample_rows_kernel(const uint8_t* __restrict__ in, uint8_t* __restrict__ out, int64_t rows,
                                     int64_t w_in, int64_t w_out, const int32_t* __restrict__ first,
                                     const int32_t* __restrict__ count, const int16_t* __restrict__ weights, int taps,
                                     int precision) {
  const int64_t total = rows * w_out * 3;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t c = i % 3, p = i / 3, x = p % w_out, row = p / w_out;
    out[i] = fm::resample_taps(in + (row * w_in + first[x]) * 3 + c, 3, weights + x * taps, count[x], precision);
  }
}

// Vertical pass: out [n, h_out, w, 3] from in [n, h_in, w, 3]; taps one row (w * 3 bytes) apart.
__global__ void resample_columns_kernel(const uint8_t* __restrict__ in, uint8_t* __restrict__ out, int64_t n,
                                        int64_t h_in, int64_t h_out, int64_t row_bytes, const int32_t* __restrict__ first,
                                        const int32_t* __restrict__ count, const int16_t* __restrict__ weights, int taps,
                                        int precision) {
  const int64_t total = n * h_out * row_bytes;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = i % row_bytes, p = i / row_bytes, y = p % h_out, f = p / h_out;
    out[i] = fm::resample_taps(in + (f * h_in + first[y]) * row_bytes + e, row_bytes, weights + y * taps, count[y],
                               precision);
  }
}

// out[r, q]: row r = ((t * mh + bh) * mw + bw) * M * M + mr * M + mc, column q = ((c * T + f) * P + py) * P + px,
// the pixel (y, x) = ((bh * M + mr) * P + py, (bw * M + mc) * P + px) of frame min(t * T + f, n - 1).
__global__ void patchify_levels_kernel(const uint8_t* __restrict__ rgb, const float* __restrict__ table,
                                       float* __restrict__ out, int64_t n, int64_t H, int64_t W, int64_t P, int64_t T,
                                       int64_t M, int64_t rows, int64_t cols) {
  __shared__ float lut[3 * 256];
  for (int k = threadIdx.x; k < 3 * 256; k += blockDim.x) lut[k] = table[k];
  __syncthreads();
  const int64_t mw = W / P / M, mh = H / P / M;
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    int64_t r = i / cols, q = i % cols;
    const int64_t mc = r % M;
    r /= M;
    const int64_t mr = r % M;
    r /= M;
    const int64_t bw = r % mw;
    r /= mw;
    const int64_t bh = r % mh, t = r / mh;
    const int64_t px = q % P;
    q /= P;
    const int64_t py = q % P;
    q /= P;
    const int64_t f = q % T, c = q / T;
    const int64_t frame = t * T + f < n ? t * T + f : n - 1;  // padding repeats the last frame
    const int64_t y = (bh * M + mr) * P + py, x = (bw * M + mc) * P + px;
    out[i] = lut[c * 256 + rgb[((frame * H + y) * W + x) * 3 + c]];
  }
}

unsigned blocks_for(int64_t total) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 20)));
}

// The weights of one pass on the device: [first..., count...] int32 and [out, taps] int16, staged
// in pinned memory so that the copies are asynchronous on the current stream (the host allocator
// keeps the staging blocks until the copies have run).
struct DeviceWeights {
  at::Tensor ranges, weights;
  int64_t taps;
  int precision;
};

DeviceWeights upload_weights(int64_t in_size, int64_t out_size, const at::Device& device) {
  const ResampleWeights r = bicubic_aa_weights(in_size, out_size);
  const auto pinned = at::TensorOptions().pinned_memory(true);
  at::Tensor ranges = at::empty({2 * out_size}, pinned.dtype(at::kInt));
  at::Tensor weights = at::empty({static_cast<int64_t>(r.weights.size())}, pinned.dtype(at::kShort));
  std::copy(r.first.begin(), r.first.end(), ranges.data_ptr<int32_t>());
  std::copy(r.count.begin(), r.count.end(), ranges.data_ptr<int32_t>() + out_size);
  std::copy(r.weights.begin(), r.weights.end(), weights.data_ptr<int16_t>());
  return {ranges.to(device, /*non_blocking=*/true), weights.to(device, /*non_blocking=*/true), r.taps, r.precision};
}

}  // namespace

void frames_to_rgb(const std::vector<fm::FrameArgs>& frames, at::Tensor& rgb) {
  const c10::cuda::CUDAGuard guard(rgb.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(rgb.device().index()).stream();
  const int width = static_cast<int>(rgb.size(2)), height = static_cast<int>(rgb.size(1));
  const dim3 block(32, 8);
  for (size_t first = 0; first < frames.size(); first += kFramesPerLaunch) {
    FrameBatch batch;
    const size_t n = std::min<size_t>(kFramesPerLaunch, frames.size() - first);
    for (size_t k = 0; k < n; ++k) batch.frames[k] = frames[first + k];
    const dim3 grid((width + block.x - 1) / block.x, (height + block.y - 1) / block.y, static_cast<unsigned>(n));
    frames_to_rgb_kernel<<<grid, block, 0, stream>>>(batch, width, height, static_cast<int64_t>(first),
                                                     rgb.data_ptr<uint8_t>());
    cu::check_launch(kOp);
  }
}

void resize_bicubic_aa(const at::Tensor& in, at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(in.device().index()).stream();
  const int64_t n = in.size(0), h_in = in.size(1), w_in = in.size(2), h_out = out.size(1), w_out = out.size(2);
  at::Tensor cur = in;
  if (w_out != w_in) {  // ATen's order: horizontal first, rounded to uint8
    const DeviceWeights d = upload_weights(w_in, w_out, in.device());
    at::Tensor next = h_out != h_in ? at::empty({n, h_in, w_out, 3}, in.options()) : out;
    const int32_t* ranges = d.ranges.data_ptr<int32_t>();
    resample_rows_kernel<<<blocks_for(n * h_in * w_out * 3), kThreads, 0, stream>>>(
        cur.data_ptr<uint8_t>(), next.data_ptr<uint8_t>(), n * h_in, w_in, w_out, ranges, ranges + w_out,
        d.weights.data_ptr<int16_t>(), static_cast<int>(d.taps), d.precision);
    cu::check_launch(kOp);
    cur = next;
  }
  if (h_out != h_in) {
    const DeviceWeights d = upload_weights(h_in, h_out, in.device());
    const int32_t* ranges = d.ranges.data_ptr<int32_t>();
    resample_columns_kernel<<<blocks_for(n * h_out * w_out * 3), kThreads, 0, stream>>>(
        cur.data_ptr<uint8_t>(), out.data_ptr<uint8_t>(), n, h_in, h_out, w_out * 3, ranges, ranges + h_out,
        d.weights.data_ptr<int16_t>(), static_cast<int>(d.taps), d.precision);
    cu::check_launch(kOp);
  }
}

void patchify_levels(const at::Tensor& rgb, const at::Tensor& table, int64_t patch, int64_t temporal, int64_t merge,
                     at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(rgb.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(rgb.device().index()).stream();
  const int64_t rows = out.size(0), cols = out.size(1);
  if (rows * cols == 0) return;
  // Enough blocks to fill the GPU; each loads the 3 KB table once and strides over the output.
  patchify_levels_kernel<<<std::min(blocks_for(rows * cols), 8192u), kThreads, 0, stream>>>(
      rgb.data_ptr<uint8_t>(), table.data_ptr<float>(), out.data_ptr<float>(), rgb.size(0), rgb.size(1), rgb.size(2),
      patch, temporal, merge, rows, cols);
  cu::check_launch(kOp);
}

}  // namespace qwenvl::kernels::cuda
