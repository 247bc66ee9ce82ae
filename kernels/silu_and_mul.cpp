// silu_and_mul: entry points, argument checks and the CPU reference path (libtorch's own silu and
// product, which is the reference's op sequence).
#include "kernels/silu_and_mul.h"

#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "silu_and_mul";

void check_args(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out) {
  using namespace detail;
  if (gate.dim() < 1 || gate.sizes() != up.sizes())
    fail(kOp, "gate ", gate.sizes(), " and up ", up.sizes(), " must share one shape");
  if (gate.scalar_type() != up.scalar_type() || out.scalar_type() != gate.scalar_type())
    fail(kOp, "gate, up and out must share one dtype, got ", gate.scalar_type(), ", ", up.scalar_type(), ", ",
         out.scalar_type());
  const auto t = gate.scalar_type();
  if (t != at::kBFloat16 && t != at::kHalf && t != at::kFloat) fail(kOp, "takes bf16, fp16 or fp32, got ", t);
  if (out.sizes() != gate.sizes() || !out.is_contiguous()) fail(kOp, "out must be contiguous with shape ", gate.sizes());
  check_same_device(gate, up, kOp, "up");
  check_same_device(gate, out, kOp, "out");
}

void run(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out) {
  check_args(gate, up, out);
  if (gate.numel() == 0) return;
  detail::count_dispatch(KernelOp::kSiluAndMul, gate.is_cuda() ? DispatchPath::kCudaKernel : DispatchPath::kCpuReference);
  if (gate.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    cuda::silu_and_mul(gate, up, out);
    return;
#else
    detail::fail_no_cuda(kOp);
#endif
  }
  at::mul_out(out, at::silu(gate), up);
}

}  // namespace

void silu_and_mul_out(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out) { run(gate, up, out); }

at::Tensor silu_and_mul(const at::Tensor& gate, const at::Tensor& up) {
  at::Tensor out = at::empty(gate.sizes(), gate.options().memory_format(at::MemoryFormat::Contiguous));
  run(gate, up, out);
  return out;
}

void silu_and_mul_out(const at::Tensor& gate_up, at::Tensor& out) {
  if (gate_up.dim() < 1 || gate_up.size(-1) % 2 != 0)
    detail::fail(kOp, "gate_up must have an even last dimension, got ", gate_up.sizes());
  const int64_t inter = gate_up.size(-1) / 2;
  run(gate_up.narrow(-1, 0, inter), gate_up.narrow(-1, inter, inter), out);
}

at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  if (gate_up.dim() < 1 || gate_up.size(-1) % 2 != 0)
    detail::fail(kOp, "gate_up must have an even last dimension, got ", gate_up.sizes());
  std::vector<int64_t> shape = gate_up.sizes().vec();
  shape.back() /= 2;
  at::Tensor out = at::empty(shape, gate_up.options().memory_format(at::MemoryFormat::Contiguous));
  silu_and_mul_out(gate_up, out);
  return out;
}

}  // namespace qwenvl::kernels
