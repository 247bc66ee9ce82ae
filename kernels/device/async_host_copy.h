// A device tensor copied to the host without waiting for the device: the copy is queued on the
// current stream into pinned memory, and wait() blocks only until that copy is done, not for work
// queued on the stream after it. The engine reads a step's sampled ids this way while the next
// decode step already runs. On the CPU the "copy" is the tensor itself.
#pragma once

#include <ATen/ATen.h>

#include <memory>

namespace qwenvl::kernels {

class AsyncHostCopy {
 public:
  explicit AsyncHostCopy(const at::Tensor& tensor);
  ~AsyncHostCopy();
  AsyncHostCopy(AsyncHostCopy&&) noexcept;
  AsyncHostCopy& operator=(AsyncHostCopy&&) noexcept;

  // The host tensor, once the copy has landed (contiguous, same dtype and shape).
  const at::Tensor& wait();

 private:
  struct Completion;
  at::Tensor host_;
  std::unique_ptr<Completion> done_;  // null on the CPU
};

}  // namespace qwenvl::kernels
