// Device-to-device and host-staged copies of hidden states (hidden_handoff.h).
#include "runtime/stages/hidden_handoff.h"

namespace qwenvl::runtime::stages {

at::Tensor hand_off(const at::Tensor& x, const at::Device& to, bool through_host) {
  if (through_host && (x.is_cuda() || to.is_cuda())) {
    at::Tensor host = at::empty(x.sizes(), x.options().device(at::kCPU).pinned_memory(true));
    host.copy_(x);  // the sending stage's work has finished (each stage waits for its own)
    return host.to(to, /*non_blocking=*/false, /*copy=*/true);
  }
  if (x.device() == to) return x;
  return x.to(to);
}

}  // namespace qwenvl::runtime::stages
