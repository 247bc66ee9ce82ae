#include "kernels/device/memory.h"

#ifdef QWENVL_WITH_CUDA
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#endif

namespace qwenvl::kernels {

#ifdef QWENVL_WITH_CUDA
namespace allocator = c10::cuda::CUDACachingAllocator;
using StatType = c10::CachingAllocator::StatType;

// The allocator knows no device before CUDA's lazy initialisation ("Invalid device argument"):
// one small tensor on the device sets it up.
void ensure_initialized(int index) { (void)at::empty({1}, at::TensorOptions().device(at::kCUDA, index)); }

int64_t peak_device_memory_bytes(int index) {
  ensure_initialized(index);
  const auto stats = allocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
  return stats.allocated_bytes[static_cast<size_t>(StatType::AGGREGATE)].peak;
}

void reset_peak_device_memory(int index) {
  ensure_initialized(index);
  allocator::resetPeakStats(static_cast<c10::DeviceIndex>(index));
}

int64_t reserved_device_memory_bytes(int index) {
  const auto stats = allocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
  return stats.reserved_bytes[static_cast<size_t>(StatType::AGGREGATE)].current;
}

int64_t memory_outside_allocator_bytes(int index) {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(index));
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
  return std::max<int64_t>(0, static_cast<int64_t>(total - free) - reserved_device_memory_bytes(index));
}

int64_t available_device_memory_bytes(int index) {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(index));
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return -1;
  const auto stats = allocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
  const int64_t cached = stats.reserved_bytes[static_cast<size_t>(StatType::AGGREGATE)].current -
                         stats.allocated_bytes[static_cast<size_t>(StatType::AGGREGATE)].current;
  return static_cast<int64_t>(free) + std::max<int64_t>(0, cached);
}
#else
int64_t peak_device_memory_bytes(int) { return 0; }
int64_t available_device_memory_bytes(int) { return -1; }
int64_t reserved_device_memory_bytes(int) { return 0; }
int64_t memory_outside_allocator_bytes(int) { return 0; }
void reset_peak_device_memory(int) {}
#endif

}  // namespace qwenvl::kernels
