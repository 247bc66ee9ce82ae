#include "nn/layers.h"

namespace qwenvl::nn {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto xf = x.to(at::kFloat);
  auto variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(variance + eps)).to(x.scalar_type());
}

at::Tensor gated_mlp(const at::Tensor& x, const at::Tensor& gate_w, const at::Tensor& gate_b,
                     const at::Tensor& up_w, const at::Tensor& up_b, const at::Tensor& down_w,
                     const at::Tensor& down_b) {
  auto gate = at::silu(at::linear(x, gate_w, gate_b));
  return at::linear(gate * at::linear(x, up_w, up_b), down_w, down_b);
}

}  // namespace qwenvl::nn
