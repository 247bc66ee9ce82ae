// apply_token_bitmask on the GPU: one thread per id, so the 32 ids of a warp share one mask word (one
// broadcast load); only forbidden entries are written and no logit is read, so a step costs the
// writes of the forbidden ids (at most rows x vocab x 4 bytes) and the masks' words.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cmath>

#include "kernels/check.h"
#include "kernels/cuda_utils.cuh"
#include "kernels/token_bitmask_cuda.h"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "apply_token_bitmask";
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocksPerRow = 1024;  // grid-stride past this (a 152k vocabulary needs 594)

// Grid: x over ids, y over mask rows.
__global__ void __launch_bounds__(kThreads)
    apply_token_bitmask_kernel(float* __restrict__ logits, int64_t row_stride, int64_t vocab,
                               const int32_t* __restrict__ bitmask, int64_t words, const int32_t* __restrict__ rows) {
  const int64_t mask_row = blockIdx.y;
  float* out = logits + static_cast<int64_t>(rows[mask_row]) * row_stride;
  const int32_t* mask = bitmask + mask_row * words;
  for (int64_t id = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; id < vocab;
       id += static_cast<int64_t>(gridDim.x) * kThreads) {
    const auto word = static_cast<uint32_t>(__ldg(mask + (id >> 5)));
    if (((word >> (id & 31)) & 1u) == 0) out[id] = -INFINITY;
  }
}

}  // namespace

void apply_token_bitmask(at::Tensor& logits, const at::Tensor& bitmask, const at::Tensor& rows) {
  const int64_t n = bitmask.size(0), vocab = logits.size(1);
  if (n > 65535) detail::fail(kOp, "at most 65535 mask rows a launch, got ", n);
  const c10::cuda::CUDAGuard guard(logits.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(logits.device().index()).stream();
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((vocab + kThreads - 1) / kThreads, kMaxBlocksPerRow)),
                  static_cast<unsigned>(n));
  const at::Tensor index = rows.contiguous();
  apply_token_bitmask_kernel<<<grid, kThreads, 0, stream>>>(logits.data_ptr<float>(), logits.stride(0), vocab,
                                                            bitmask.data_ptr<int32_t>(), bitmask.size(1),
                                                            index.data_ptr<int32_t>());
  cu::check_launch(kOp);
}

}  // namespace qwenvl::kernels::cuda
