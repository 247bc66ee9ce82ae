// A thread's allocations routed to a pool of their own, and its peak (memory_pool.h).
#include "kernels/device/memory_pool.h"

#include "kernels/device/memory.h"

#ifdef QWENVL_WITH_CUDA
#include <ATen/cuda/MemPool.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>
#endif

namespace qwenvl::kernels {

#ifdef QWENVL_WITH_CUDA
namespace allocator = c10::cuda::CUDACachingAllocator;

struct ThreadMemoryPool::Impl {
  c10::DeviceIndex device;
  at::cuda::MemPool pool;  // made on the current device: construct under a guard
  explicit Impl(c10::DeviceIndex index) : device(index) {}
};

ThreadMemoryPool::ThreadMemoryPool(const at::Device& device, std::thread::id thread) {
  if (!device.is_cuda()) return;
  const c10::cuda::CUDAGuard guard(device);
  impl_ = std::make_unique<Impl>(device.index());
  allocator::beginAllocateToPool(impl_->device, impl_->pool.id(), [thread](cudaStream_t stream) {
    if (std::this_thread::get_id() != thread) return false;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(stream, &capturing) == cudaSuccess && capturing == cudaStreamCaptureStatusNone;
  });
}

ThreadMemoryPool::~ThreadMemoryPool() {
  if (!impl_) return;
  const c10::cuda::CUDAGuard guard(at::Device(at::kCUDA, impl_->device));
  allocator::endAllocateToPool(impl_->device, impl_->pool.id());
}

void ThreadMemoryPool::sample() {
  if (!impl_) return;
  const int64_t device_reserved = reserved_device_memory_bytes(impl_->device);
  std::lock_guard<std::mutex> lock(sample_mutex_);
  if (device_reserved == device_reserved_seen_) return;  // no segment came or went: the pool's bytes did not change
  device_reserved_seen_ = device_reserved;
  const c10::MempoolId_t id = impl_->pool.id();
  const int64_t reserved = pool_reserved_bytes(impl_->device, id.first, id.second);
  if (reserved > peak_.load()) peak_.store(reserved);
}

int64_t pool_reserved_bytes(int index, uint64_t pool_first, uint64_t pool_second) {
  const c10::MempoolId_t id{pool_first, pool_second};
  int64_t reserved = 0;
  for (const auto& segment : allocator::snapshot(id, /*include_traces=*/false).segments)
    if (segment.device == index && segment.owner_private_pool_id == id) reserved += static_cast<int64_t>(segment.total_size);
  return reserved;
}

#else
struct ThreadMemoryPool::Impl {};
ThreadMemoryPool::ThreadMemoryPool(const at::Device&, std::thread::id) {}
ThreadMemoryPool::~ThreadMemoryPool() = default;
void ThreadMemoryPool::sample() {}
int64_t pool_reserved_bytes(int, uint64_t, uint64_t) { return 0; }
#endif

}  // namespace qwenvl::kernels
