#include "kernels/device/graph.h"

#include "kernels/check.h"
#include "kernels/device/memory_pool.h"

#ifdef QWENVL_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace qwenvl::kernels {

constexpr const char* kOp = "device_graph";

#ifdef QWENVL_WITH_CUDA
struct DeviceGraph::Impl {
  at::cuda::CUDAGraph graph;
  int device = 0;
};

DeviceGraph::DeviceGraph(at::Device device, const std::function<void()>& work, const DeviceGraph* share_pool_with)
    : impl_(std::make_unique<Impl>()) {
  if (!device.is_cuda()) detail::fail(kOp, "graphs record CUDA work; got device ", device.str());
  impl_->device = device.index();
  const c10::cuda::CUDAGuard device_guard(device);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
  const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device.index());
  // The side stream starts after the caller's queued work, which the recorded work may read.
  at::cuda::CUDAEvent caller_ready;
  caller_ready.record(caller);
  caller_ready.block(side);
  {
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    work();
    // Thread-local capture: other threads' CUDA calls (another engine, a preparation stream) are
    // not part of this graph and must not invalidate it.
    impl_->graph.capture_begin(share_pool_with != nullptr ? share_pool_with->impl_->graph.pool()
                                                          : c10::MempoolId_t{0, 0},
                               cudaStreamCaptureModeThreadLocal);
    try {
      work();
    } catch (...) {
      try {
        impl_->graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    impl_->graph.capture_end();
  }
  at::cuda::CUDAEvent side_done;
  side_done.record(side);
  side_done.block(caller);
}

DeviceGraph::~DeviceGraph() = default;

void DeviceGraph::replay() { impl_->graph.replay(); }

int64_t DeviceGraph::pool_reserved_bytes() const {
  const c10::MempoolId_t pool = impl_->graph.pool();
  return kernels::pool_reserved_bytes(impl_->device, pool.first, pool.second);
}
#else
struct DeviceGraph::Impl {};

DeviceGraph::DeviceGraph(at::Device, const std::function<void()>&, const DeviceGraph*) { detail::fail_no_cuda(kOp); }
DeviceGraph::~DeviceGraph() = default;
void DeviceGraph::replay() { detail::fail_no_cuda(kOp); }
int64_t DeviceGraph::pool_reserved_bytes() const { return 0; }
#endif

}  // namespace qwenvl::kernels
