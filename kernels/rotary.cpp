// Rotary embeddings: entry points, argument checks and the CPU reference path (libtorch ops in the
// reference's order: angles in fp32, the multi-axis rotation in the activation dtype, the 2-D one
// in fp32). The fused rotary + KV-cache write runs on the CPU as the two ops in sequence.
#include "kernels/rotary.h"

#include <numeric>

#include "kernels/attention.h"
#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#include "kernels/write_kv_cache.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "rotary";
constexpr const char* kFusedOp = "multi_axis_rotary_and_write_kv";

void check_x(const char* op, const at::Tensor& x, const at::Tensor& q, int64_t tokens, const char* name) {
  using namespace detail;
  check_dim(x, 3, op, name);
  if (x.size(0) != tokens || x.size(2) != q.size(2) || x.size(2) % 4 != 0)
    fail(op, name, " must be [", tokens, ", heads, d] with d a multiple of 4 and d = ", q.size(2), ", got ", x.sizes());
  if (x.stride(2) != 1 && x.size(2) > 1) fail(op, name, "'s last dimension must be contiguous");
  if (x.scalar_type() != q.scalar_type()) fail(op, "q and k must share one dtype");
  if (x.scalar_type() != at::kBFloat16 && x.scalar_type() != at::kHalf && x.scalar_type() != at::kFloat)
    fail(op, name, " must be bf16, fp16 or fp32, got ", x.scalar_type());
  check_same_device(q, x, op, name);
}

void check_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions,
                const std::vector<int64_t>* sections, const char* op = kOp) {
  using namespace detail;
  check_dim(q, 3, op, "q");
  const int64_t tokens = q.size(0);
  check_x(op, q, q, tokens, "q");
  if (k.defined()) check_x(op, k, q, tokens, "k");
  check_same_device(q, positions, op, "positions");
  if (positions.scalar_type() != at::kLong) fail(op, "positions must be int64, got ", positions.scalar_type());
  if (sections != nullptr) {
    const int64_t sum = std::accumulate(sections->begin(), sections->end(), int64_t{0});
    if (sections->empty() || sections->size() > 4 || sum != q.size(2) / 2)
      fail(op, "sections must be 1 to 4 counts summing to d / 2 = ", q.size(2) / 2);
    for (int64_t s : *sections)
      if (s < 0) fail(op, "sections must not be negative");
    if (positions.dim() != 2 || positions.size(0) != int64_t(sections->size()) || positions.size(1) != tokens)
      fail(op, "positions must be [", sections->size(), ", ", tokens, "], got ", positions.sizes());
  } else if (positions.dim() != 2 || positions.size(0) != tokens || positions.size(1) != 2) {
    fail(op, "positions must be [", tokens, ", 2], got ", positions.sizes());
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

void multi_axis_rotary_and_write_kv_(at::Tensor& q, at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                                     double theta, const std::vector<int64_t>& sections, at::Tensor& k_cache,
                                     at::Tensor& v_cache, const at::Tensor& slot_mapping) {
  using namespace detail;
  if (!k.defined()) fail(kFusedOp, "k must be defined: its rotated rows go to the cache");
  check_args(q, k, positions, &sections, kFusedOp);
  check_write_kv_cache_args(kFusedOp, k, v, k_cache, v_cache, slot_mapping);
  if (!q.is_cuda()) {
    // Refused before q and k change (write_kv_cache alone checks this after the rotation).
    const int64_t slots = k_cache.size(0) * k_cache.size(1);
    if (slot_mapping.numel() > 0 && slot_mapping.max().item<int64_t>() >= slots)
      fail(kFusedOp, "slot ", slot_mapping.max().item<int64_t>(), " is past the cache's ", slots, " slots");
    multi_axis_rotary_(q, k, positions, theta, sections);
    write_kv_cache(k, v, k_cache, v_cache, slot_mapping);
    return;
  }
#ifdef QWENVL_WITH_CUDA
  // Counted as the two ops it replaces, as they would count themselves.
  count_dispatch(KernelOp::kWriteKvCache, DispatchPath::kCudaKernel);
  if (q.size(0) == 0) return;
  count_dispatch(KernelOp::kRotary, DispatchPath::kCudaKernel);
  cuda::rotary_and_write_kv(q, k, v, positions, rotary_inv_freq(theta, q.size(2)), sections, k_cache, v_cache,
                            slot_mapping);
#else
  fail_no_cuda(kFusedOp);
#endif
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
