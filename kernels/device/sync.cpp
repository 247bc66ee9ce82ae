#include "kernels/device/sync.h"

#include "kernels/check.h"

#ifdef QWENVL_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace qwenvl::kernels {

void synchronize_device(at::Device device) {
  if (!device.is_cuda()) return;
#ifdef QWENVL_WITH_CUDA
  c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
#else
  detail::fail_no_cuda("synchronize_device");
#endif
}

}  // namespace qwenvl::kernels
