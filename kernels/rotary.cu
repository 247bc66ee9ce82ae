// Rotary embeddings on the GPU: one CTA per token computes that token's cos/sin once (precise
// cosf/sinf, as libtorch's CUDA cos/sin) and rotates every head of q and k with them. Products and
// sums use explicit round-to-nearest intrinsics so that no FMA contraction changes the reference's
// rounding.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/check.h"
#include "kernels/cuda_launchers.h"
#include "kernels/cuda_utils.cuh"

namespace qwenvl::kernels::cuda {
namespace {

constexpr const char* kOp = "rotary";
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
};

// Multi-axis (kTwoD false): cos/sin rounded to E and the rotation rounded in E after each product
// and the sum. 2-D: fp32 cos/sin and fp32 rotation, one cast at the end.
template <typename E, bool kTwoD>
__global__ void __launch_bounds__(kThreads) rotary_kernel(const E* q_in, const E* k_in, E* q_out, E* k_out,
                                                          const int64_t* __restrict__ positions,
                                                          const __grid_constant__ RotaryParams p) {
  using T = cu::Elem<E>;
  __shared__ float cos_s[kMaxFreqs], sin_s[kMaxFreqs];
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
  __syncthreads();
  const int q_pairs = p.q_heads * half;
  const int total = q_pairs + (k_in != nullptr ? p.k_heads * half : 0);
  for (int idx = threadIdx.x; idx < total; idx += kThreads) {
    const bool is_q = idx < q_pairs;
    const int rel = is_q ? idx : idx - q_pairs;
    const int h = rel / half, j = rel - h * half;
    const E* src = is_q ? q_in + t * p.q_in_t + h * p.q_in_h : k_in + t * p.k_in_t + h * p.k_in_h;
    E* dst = is_q ? q_out + t * p.q_out_t + h * p.q_out_h : k_out + t * p.k_out_t + h * p.k_out_h;
    const float x1 = T::to_float(src[j]), x2 = T::to_float(src[j + half]);
    const float c = cos_s[j], s = sin_s[j];
    float o1, o2;
    if constexpr (kTwoD) {
      o1 = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(-x2, s));
      o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
    } else {
      const auto r = [](float v) { return T::to_float(T::from_float(v)); };
      o1 = __fadd_rn(r(__fmul_rn(x1, c)), r(__fmul_rn(-x2, s)));
      o2 = __fadd_rn(r(__fmul_rn(x2, c)), r(__fmul_rn(x1, s)));
    }
    dst[j] = T::from_float(o1);
    dst[j + half] = T::from_float(o2);
  }
}

}  // namespace

void rotary(const at::Tensor& q, const at::Tensor& k, at::Tensor& q_out, at::Tensor& k_out,
            const at::Tensor& positions_in, const at::Tensor& inv_freq, const std::vector<int64_t>& sections) {
  const bool two_d = sections.empty();
  RotaryParams p{};
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
  const auto launch = [&](auto tag) {
    using E = decltype(tag);
    const E* kin = k.defined() ? static_cast<const E*>(k.data_ptr()) : nullptr;
    E* kout = k.defined() ? static_cast<E*>(k_out.data_ptr()) : nullptr;
    const auto kernel = two_d ? rotary_kernel<E, true> : rotary_kernel<E, false>;
    kernel<<<static_cast<unsigned>(p.tokens), kThreads, 0, stream>>>(
        static_cast<const E*>(q.data_ptr()), kin, static_cast<E*>(q_out.data_ptr()), kout,
        positions.data_ptr<int64_t>(), p);
    cu::check_launch(kOp);
  };
  switch (q.scalar_type()) {
    case at::kBFloat16: launch(__nv_bfloat16()); break;
    case at::kHalf: launch(__half()); break;
    case at::kFloat: launch(float()); break;
    default: detail::fail(kOp, "the CUDA kernel takes bf16, fp16 or fp32, got ", q.scalar_type());
  }
}

}  // namespace qwenvl::kernels::cuda
