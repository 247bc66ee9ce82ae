// rms_norm and fused_add_rms_norm: entry points, argument checks and the CPU reference path.
#include "kernels/rms_norm.h"

#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "rms_norm";

void check_args(const at::Tensor& x, const at::Tensor* residual, const at::Tensor& weight,
                const at::Tensor& out) {
  using namespace detail;
  if (x.dim() < 1 || weight.dim() != 1 || x.size(-1) != weight.size(0))
    fail(kOp, "weight ", weight.sizes(), " does not match the last dimension of x ", x.sizes());
  if (weight.scalar_type() != x.scalar_type() || out.scalar_type() != x.scalar_type())
    fail(kOp, "x, weight and out must share one dtype, got ", x.scalar_type(), ", ", weight.scalar_type(), ", ", out.scalar_type());
  if (out.sizes() != x.sizes() || !out.is_contiguous()) fail(kOp, "out must be contiguous with x's shape ", x.sizes());
  check_same_device(x, weight, kOp, "weight");
  check_same_device(x, out, kOp, "out");
  if (residual != nullptr) {
    if (residual->sizes() != x.sizes() || residual->scalar_type() != x.scalar_type() || !residual->is_contiguous())
      fail(kOp, "residual must be contiguous with x's shape ", x.sizes(), " and dtype");
    check_same_device(x, *residual, kOp, "residual");
  }
}

// HF's Qwen2RMSNorm: fp32 variance and scaling, cast back, then the weight in the model dtype.
void reference(const at::Tensor& h, const at::Tensor& weight, double eps, at::Tensor& out) {
  const at::Tensor f = h.to(at::kFloat);
  const at::Tensor normed = f * at::rsqrt(f.pow(2).mean(-1, true) + eps);
  out.copy_(weight * normed.to(h.scalar_type()));
}

void run(const at::Tensor& x, at::Tensor* residual, const at::Tensor& weight, double eps, at::Tensor& out) {
  check_args(x, residual, weight, out);
  detail::count_dispatch(KernelOp::kRmsNorm, x.is_cuda() ? DispatchPath::kCudaKernel : DispatchPath::kCpuReference);
  if (x.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    cuda::rms_norm(x, residual != nullptr ? *residual : at::Tensor(), weight, eps, out);
    return;
#else
    detail::fail_no_cuda(kOp);
#endif
  }
  if (residual == nullptr) {
    reference(x, weight, eps, out);
    return;
  }
  residual->add_(x);  // the model's own residual add, rounded to its dtype
  reference(*residual, weight, eps, out);
}

}  // namespace

void rms_norm_out(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& out) {
  run(x, nullptr, weight, eps, out);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  rms_norm_out(x, weight, eps, out);
  return out;
}

void fused_add_rms_norm_out(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight,
                            double eps, at::Tensor& out) {
  run(x, &residual, weight, eps, out);
}

at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight,
                              double eps) {
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  fused_add_rms_norm_out(x, residual, weight, eps, out);
  return out;
}

}  // namespace qwenvl::kernels
