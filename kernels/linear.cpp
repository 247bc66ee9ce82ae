// linear: entry point, argument checks, and the choice between our decode kernel and at::linear
// (the CPU path, and cuBLAS for everything the kernel does not take).
#include "kernels/linear.h"

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#include "kernels/speed_switch.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "linear";

// QWENVL_GEMV=0 sends every call to at::linear (read once).
bool kernel_enabled() {
  static const bool enabled = detail::speed_switch_on("QWENVL_GEMV");
  return enabled;
}

void check_args(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  using namespace detail;
  if (!x.defined() || !weight.defined()) fail(kOp, "x and weight must be defined");
  check_dim(weight, 2, kOp, "weight");
  if (x.dim() < 1 || x.size(-1) != weight.size(1))
    fail(kOp, "x ", x.sizes(), " does not match weight ", weight.sizes(), ": the last dimension of x must be K = ",
         weight.size(1));
  if (weight.scalar_type() != x.scalar_type())
    fail(kOp, "x and weight must share one dtype, got ", x.scalar_type(), " and ", weight.scalar_type());
  if (weight.device() != x.device()) fail(kOp, "weight is on ", weight.device(), " but x is on ", x.device());
  if (!bias.defined()) return;
  if (bias.dim() != 1 || bias.size(0) != weight.size(0))
    fail(kOp, "bias must be [", weight.size(0), "] (one per output), got ", bias.sizes());
  if (bias.scalar_type() != x.scalar_type())
    fail(kOp, "bias must share x's dtype ", x.scalar_type(), ", got ", bias.scalar_type());
  if (bias.device() != x.device()) fail(kOp, "bias is on ", bias.device(), " but x is on ", x.device());
}

bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

// Arguments already checked.
bool kernel_takes(const at::Tensor& x, const at::Tensor& weight) {
  if (!built_with_cuda() || !x.is_cuda() || !kernel_enabled()) return false;
  const auto t = x.scalar_type();
  if (t != at::kBFloat16 && t != at::kHalf) return false;
  const int64_t k = weight.size(1), n = weight.size(0);
  if (k < 8 || k % 8 != 0 || n < 1) return false;
  const int64_t rows = x.numel() / k;
  return rows >= 1 && rows <= kLinearMaxRows && weight.is_contiguous() && aligned16(weight);
}

}  // namespace

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  check_args(x, weight, bias);
  if (!kernel_takes(x, weight)) {
    // A CUDA call the kernel does not take is cuBLAS's (prefill, fp32); counted as the reference
    // on the device, which the GPU tests allow for this op.
    detail::count_dispatch(KernelOp::kLinear, x.is_cuda() ? DispatchPath::kReferenceOnCuda : DispatchPath::kCpuReference);
    return at::linear(x, weight, bias);
  }
#ifndef QWENVL_WITH_CUDA
  detail::fail_no_cuda(kOp);  // not reached: kernel_takes() is false without the kernels
#else
  const int64_t k = weight.size(1), n = weight.size(0);
  // x is at most 8 rows: a copy that makes its rows contiguous and 16-byte aligned costs nothing.
  at::Tensor x2 = x.reshape({-1, k});
  if (!x2.is_contiguous() || !aligned16(x2)) x2 = x2.clone(at::MemoryFormat::Contiguous);
  const at::Tensor b = bias.defined() ? bias.contiguous() : bias;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  at::Tensor out = at::empty(shape, x.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor out2 = out.view({-1, n});
  detail::count_dispatch(KernelOp::kLinear, DispatchPath::kCudaKernel);
  cuda::linear(x2, weight, b, out2);
  return out;
#endif
}

}  // namespace qwenvl::kernels
