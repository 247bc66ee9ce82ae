#include "kernels/device/device_span.h"

#ifdef QWENVL_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda.h>  // the driver's types only: its entry points come through the runtime
#include <cuda_runtime_api.h>
#endif

#include <cstdio>
#include <string>

namespace qwenvl::kernels {

#ifdef QWENVL_WITH_CUDA
namespace {

using PointerGetAttributes = CUresult (*)(unsigned int, CUpointer_attribute*, void**, CUdeviceptr);
using CtxGetCurrent = CUresult (*)(CUcontext*);

// A driver entry point through the runtime, so that nothing links libcuda itself.
template <typename F>
F driver_entry(const char* name) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult status = cudaDriverEntryPointSymbolNotFound;
  if (cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &status) != cudaSuccess ||
      status != cudaDriverEntryPointSuccess)
    return nullptr;
  return reinterpret_cast<F>(fn);
}

std::string hex(uintptr_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

std::string check_device_span(const void* begin, int64_t bytes, const at::Device& device) {
  if (!device.is_cuda()) return "the device is not a CUDA device";
  static const PointerGetAttributes get_attributes = driver_entry<PointerGetAttributes>("cuPointerGetAttributes");
  static const CtxGetCurrent get_current = driver_entry<CtxGetCurrent>("cuCtxGetCurrent");
  if (get_attributes == nullptr || get_current == nullptr) return "the CUDA driver does not answer pointer queries";
  const c10::cuda::CUDAGuard guard(device);
  cudaFree(nullptr);  // makes the device's primary context current on this thread, if nothing did yet
  CUcontext primary = nullptr;
  if (get_current(&primary) != CUDA_SUCCESS) return "the CUDA driver has no current context for " + device.str();

  // First what the pointer is: an address the driver does not know answers CUDA_SUCCESS with every
  // value left unset (memory type 0).
  CUcontext context = nullptr;
  int ordinal = -1;
  unsigned int type = 0;
  CUpointer_attribute what[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                                CU_POINTER_ATTRIBUTE_CONTEXT};
  void* what_values[] = {&type, &ordinal, &context};
  const auto address = reinterpret_cast<CUdeviceptr>(begin);
  CUresult result = get_attributes(3, what, what_values, address);
  if (result != CUDA_SUCCESS)
    return "the CUDA driver refused to describe pointer " + hex(address) + " (CUresult " + std::to_string(result) + ")";
  if (type != CU_MEMORYTYPE_DEVICE)
    return "pointer " + hex(address) + " is not CUDA device memory (host memory, or not allocated)";
  if (ordinal != device.index())
    return "pointer " + hex(address) + " lies on cuda:" + std::to_string(ordinal) + ", not on " + device.str();
  if (context != nullptr && context != primary)
    return "pointer " + hex(address) + " was allocated in a CUDA context other than " + device.str() +
           "'s primary context (the one the engine and libtorch use), whose kernels cannot read it: allocate the "
           "frames in the primary context (GStreamer: let the qwenvl element share its CUDA context) or copy them";
  // Then the allocation it lies in.
  CUdeviceptr start = 0;
  size_t size = 0;
  CUpointer_attribute range[] = {CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, CU_POINTER_ATTRIBUTE_RANGE_SIZE};
  void* range_values[] = {&start, &size};
  result = get_attributes(2, range, range_values, address);
  if (result != CUDA_SUCCESS || size == 0)
    return "the CUDA driver does not say which allocation pointer " + hex(address) + " lies in (CUresult " +
           std::to_string(result) + ")";
  if (address < start || address + static_cast<CUdeviceptr>(bytes) > start + size)
    return "the " + std::to_string(bytes) + " bytes from " + hex(address) + " run past the end of their allocation (" +
           std::to_string(size) + " bytes from " + hex(start) + ")";
  return "";
}

#else

std::string check_device_span(const void*, int64_t, const at::Device&) {
  return "this build of qwenvl has no CUDA";
}

#endif

}  // namespace qwenvl::kernels
