// Host values sent to the device without the host waiting for it. A copy from pageable memory
// first waits for everything queued on the stream; from pinned memory it is queued like a kernel.
// The staging block comes from torch's pinned-host cache, which keeps it from being reused until
// the copy has run, so the caller may return at once. On the CPU the host tensor is the result.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace qwenvl::runtime {

template <typename T>
at::Tensor upload(const std::vector<T>& values, at::ScalarType type, const at::Device& device) {
  const bool to_gpu = device.is_cuda();
  at::Tensor host =
      at::empty({static_cast<int64_t>(values.size())}, at::TensorOptions().dtype(type).pinned_memory(to_gpu));
  std::copy(values.begin(), values.end(), host.data_ptr<T>());
  return to_gpu ? host.to(device, type, /*non_blocking=*/true) : host;
}

// A host tensor's values on `device` (itself when that is the CPU).
inline at::Tensor upload(const at::Tensor& host, const at::Device& device) {
  if (!device.is_cuda()) return host;
  return host.pin_memory().to(device, host.scalar_type(), /*non_blocking=*/true);
}

}  // namespace qwenvl::runtime
