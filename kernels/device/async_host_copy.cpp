#include "kernels/device/async_host_copy.h"

#include "kernels/check.h"

#ifdef QWENVL_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace qwenvl::kernels {

struct AsyncHostCopy::Completion {
#ifdef QWENVL_WITH_CUDA
  at::cuda::CUDAEvent event;
#endif
};

AsyncHostCopy::AsyncHostCopy(const at::Tensor& tensor) {
  if (!tensor.is_cuda()) {
    host_ = tensor.contiguous();
    return;
  }
#ifdef QWENVL_WITH_CUDA
  const c10::cuda::CUDAGuard guard(tensor.device());
  host_ = at::empty(tensor.sizes(), tensor.options().device(at::kCPU).pinned_memory(true));
  host_.copy_(tensor, /*non_blocking=*/true);
  done_ = std::make_unique<Completion>();
  done_->event.record(c10::cuda::getCurrentCUDAStream(tensor.device().index()));
#else
  detail::fail_no_cuda("async_host_copy");
#endif
}

AsyncHostCopy::~AsyncHostCopy() = default;
AsyncHostCopy::AsyncHostCopy(AsyncHostCopy&&) noexcept = default;
AsyncHostCopy& AsyncHostCopy::operator=(AsyncHostCopy&&) noexcept = default;

const at::Tensor& AsyncHostCopy::wait() {
#ifdef QWENVL_WITH_CUDA
  if (done_) {
    done_->event.synchronize();
    done_.reset();
  }
#endif
  return host_;
}

}  // namespace qwenvl::kernels
