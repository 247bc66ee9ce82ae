#include "kernels/device/side_stream.h"

#ifdef QWENVL_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace qwenvl::kernels {

void run_on_side_stream(const at::Device& device, const std::function<void()>& work) {
#ifdef QWENVL_WITH_CUDA
  if (device.is_cuda()) {
    const c10::cuda::CUDAGuard device_guard(device);
    const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    work();
    // Waiting here (not with an event the consumer waits on) keeps the hand-over simple: the
    // consumer may read the results on any stream, and the caching allocator's blocks of this
    // stream are free of pending work before the tensors change hands.
    side.synchronize();
    return;
  }
#else
  (void)device;
#endif
  work();
}

}  // namespace qwenvl::kernels
