#include "kernels/device/side_stream.h"

#ifdef QWENVL_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace qwenvl::kernels {

SideStream::SideStream(const at::Device& device) : device_(device), stream_(c10::Stream::DEFAULT, device) {
#ifdef QWENVL_WITH_CUDA
  if (device.is_cuda()) stream_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()).unwrap();
#endif
}

void SideStream::run(const std::function<void()>& work) const {
#ifdef QWENVL_WITH_CUDA
  if (device_.is_cuda()) {
    const c10::cuda::CUDAGuard device_guard(device_);
    const c10::cuda::CUDAStream side(stream_);
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    try {
      work();
    } catch (...) {
      side.synchronize();  // what was queued still reads its inputs (a caller's frames): wait before they go
      throw;
    }
    // Waiting here (not with an event the consumer waits on) keeps the hand-over simple: the
    // consumer may read the results on any stream, and the caching allocator's blocks of this
    // stream are free of pending work before the tensors change hands.
    side.synchronize();
    return;
  }
#endif
  work();
}

void run_on_side_stream(const at::Device& device, const std::function<void()>& work) { SideStream(device).run(work); }

}  // namespace qwenvl::kernels
