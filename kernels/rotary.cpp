// Rotary embeddings: entry points, argument checks and the CPU reference path (libtorch ops in the
// reference's order: angles in fp32, the multi-axis rotation in the activation dtype, the 2-D one
// in fp32).
#include "kernels/rotary.h"

#include <numeric>

#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "rotary";

void check_x(const at::Tensor& x, const at::Tensor& q, int64_t tokens, const char* name) {
  using namespace detail;
  check_dim(x, 3, kOp, name);
  if (x.size(0) != tokens || x.size(2) != q.size(2) || x.size(2) % 4 != 0)
    fail(kOp, name, " must be [", tokens, ", heads, d] with d a multiple of 4 and d = ", q.size(2), ", got ", x.sizes());
  if (x.stride(2) != 1 && x.size(2) > 1) fail(kOp, name, "'s last dimension must be contiguous");
  if (x.scalar_type() != q.scalar_type()) fail(kOp, "q and k must share one dtype");
  if (x.scalar_type() != at::kBFloat16 && x.scalar_type() != at::kHalf && x.scalar_type() != at::kFloat)
    fail(kOp, name, " must be bf16, fp16 or fp32, got ", x.scalar_type());
  check_same_device(q, x, kOp, name);
}

void check_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions,
                const std::vector<int64_t>* sections) {
  using namespace detail;
  check_dim(q, 3, kOp, "q");
  const int64_t tokens = q.size(0);
  check_x(q, q, tokens, "q");
  if (k.defined()) check_x(k, q, tokens, "k");
  check_same_device(q, positions, kOp, "positions");
  if (positions.scalar_type() != at::kLong) fail(kOp, "positions must be int64, got ", positions.scalar_type());
  if (sections != nullptr) {
    const int64_t sum = std::accumulate(sections->begin(), sections->end(), int64_t{0});
    if (sections->empty() || sections->size() > 4 || sum != q.size(2) / 2)
      fail(kOp, "sections must be 1 to 4 counts summing to d / 2 = ", q.size(2) / 2);
    for (int64_t s : *sections)
      if (s < 0) fail(kOp, "sections must not be negative");
    if (positions.dim() != 2 || positions.size(0) != int64_t(sections->size()) || positions.size(1) != tokens)
      fail(kOp, "positions must be [", sections->size(), ", ", tokens, "], got ", positions.sizes());
  } else if (positions.dim() != 2 || positions.size(0) != tokens || positions.size(1) != 2) {
    fail(kOp, "positions must be [", tokens, ", 2], got ", positions.sizes());
  }
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// cos/sin [tokens, d] in fp32 (the reference computes them on the activations' device).
std::pair<at::Tensor, at::Tensor> multi_axis_cos_sin(const at::Tensor& positions, int64_t d, double theta,
                                                     const std::vector<int64_t>& sections) {
  const at::Tensor inv_freq = rotary_inv_freq(theta, d).to(positions.device());
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [axes, T, d/2]
  std::vector<at::Tensor> chunks;
  int64_t start = 0;
  for (size_t axis = 0; axis < sections.size(); ++axis) {
    chunks.push_back(freqs[int64_t(axis)].narrow(-1, start, sections[axis]));
    start += sections[axis];
  }
  const at::Tensor half = at::cat(chunks, -1);
  const at::Tensor angles = at::cat({half, half}, -1);
  return {angles.cos(), angles.sin()};
}

std::pair<at::Tensor, at::Tensor> cos_sin_2d(const at::Tensor& positions, int64_t d, double theta) {
  const at::Tensor inv_freq = rotary_inv_freq(theta, d / 2).to(positions.device());
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [T, 2, d/4]
  const at::Tensor hw = at::cat({freqs.select(1, 0), freqs.select(1, 1)}, -1);
  const at::Tensor angles = at::cat({hw, hw}, -1);
  return {angles.cos(), angles.sin()};
}

at::Tensor rotate_in_dtype(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor c = cos.to(x.scalar_type()).unsqueeze(-2), s = sin.to(x.scalar_type()).unsqueeze(-2);
  return x * c + rotate_half(x) * s;
}

at::Tensor rotate_in_fp32(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor xf = x.to(at::kFloat);
  return (xf * cos.unsqueeze(-2) + rotate_half(xf) * sin.unsqueeze(-2)).to(x.scalar_type());
}

// out_q/out_k may alias q/k (in place).
void run(const at::Tensor& q, const at::Tensor& k, at::Tensor& out_q, at::Tensor& out_k,
         const at::Tensor& positions, double theta, const std::vector<int64_t>* sections) {
  if (q.size(0) == 0) return;
  detail::count_dispatch(KernelOp::kRotary, q.is_cuda() ? DispatchPath::kCudaKernel : DispatchPath::kCpuReference);
  if (q.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    const int64_t n = sections != nullptr ? q.size(2) : q.size(2) / 2;
    cuda::rotary(q, k, out_q, out_k, positions, rotary_inv_freq(theta, n),
                 sections != nullptr ? *sections : std::vector<int64_t>{});
    return;
#else
    detail::fail_no_cuda(kOp);
#endif
  }
  const auto [cos, sin] = sections != nullptr ? multi_axis_cos_sin(positions, q.size(2), theta, *sections)
                                              : cos_sin_2d(positions, q.size(2), theta);
  const auto rotate = sections != nullptr ? rotate_in_dtype : rotate_in_fp32;
  out_q.copy_(rotate(q, cos, sin));
  if (k.defined()) out_k.copy_(rotate(k, cos, sin));
}

std::pair<at::Tensor, at::Tensor> run_out_of_place(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions,
                                                   double theta, const std::vector<int64_t>* sections) {
  check_args(q, k, positions, sections);
  at::Tensor out_q = at::empty(q.sizes(), q.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor out_k = k.defined() ? at::empty(k.sizes(), k.options().memory_format(at::MemoryFormat::Contiguous))
                                 : at::Tensor();
  run(q, k, out_q, out_k, positions, theta, sections);
  return {out_q, out_k};
}

}  // namespace

at::Tensor rotary_inv_freq(double theta, int64_t n) {
  const at::Tensor exponents = at::arange(0, n, 2, at::TensorOptions().dtype(at::kFloat)) / static_cast<double>(n);
  return at::reciprocal(at::pow(theta, exponents));
}

void multi_axis_rotary_(at::Tensor& q, at::Tensor& k, const at::Tensor& positions, double theta,
                        const std::vector<int64_t>& sections) {
  check_args(q, k, positions, &sections);
  run(q, k, q, k, positions, theta, &sections);
}

std::pair<at::Tensor, at::Tensor> multi_axis_rotary(const at::Tensor& q, const at::Tensor& k,
                                                    const at::Tensor& positions, double theta,
                                                    const std::vector<int64_t>& sections) {
  return run_out_of_place(q, k, positions, theta, &sections);
}

void rotary_2d_(at::Tensor& q, at::Tensor& k, const at::Tensor& positions, double theta) {
  check_args(q, k, positions, nullptr);
  run(q, k, q, k, positions, theta, nullptr);
}

std::pair<at::Tensor, at::Tensor> rotary_2d(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions,
                                            double theta) {
  return run_out_of_place(q, k, positions, theta, nullptr);
}

}  // namespace qwenvl::kernels
