// The sticky-error list and the device probe of sticky_error.h.
#include "kernels/device/sticky_error.h"

#include <array>

#ifdef QWENVL_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace qwenvl::kernels {
namespace {

// The CUDA runtime's list of errors after which "the process must be terminated and relaunched"
// (driver_types.h), by value so that builds without CUDA classify the same codes.
constexpr std::array<int32_t, 11> kStickyCodes = {
    214,  // cudaErrorECCUncorrectable
    700,  // cudaErrorIllegalAddress
    702,  // cudaErrorLaunchTimeout
    709,  // cudaErrorContextIsDestroyed
    710,  // cudaErrorAssert
    714,  // cudaErrorHardwareStackError
    715,  // cudaErrorIllegalInstruction
    716,  // cudaErrorMisalignedAddress
    717,  // cudaErrorInvalidAddressSpace
    718,  // cudaErrorInvalidPc
    719,  // cudaErrorLaunchFailure
};

#ifdef QWENVL_WITH_CUDA
static_assert(kStickyCodes[0] == cudaErrorECCUncorrectable && kStickyCodes[1] == cudaErrorIllegalAddress &&
              kStickyCodes[2] == cudaErrorLaunchTimeout && kStickyCodes[3] == cudaErrorContextIsDestroyed &&
              kStickyCodes[4] == cudaErrorAssert && kStickyCodes[5] == cudaErrorHardwareStackError &&
              kStickyCodes[6] == cudaErrorIllegalInstruction && kStickyCodes[7] == cudaErrorMisalignedAddress &&
              kStickyCodes[8] == cudaErrorInvalidAddressSpace && kStickyCodes[9] == cudaErrorInvalidPc &&
              kStickyCodes[10] == cudaErrorLaunchFailure);
#endif

}  // namespace

bool is_sticky_error_code(int32_t cuda_error) {
  for (int32_t code : kStickyCodes)
    if (code == cuda_error) return true;
  return false;
}

std::optional<std::string> sticky_error(const at::Device& device) {
#ifdef QWENVL_WITH_CUDA
  if (!device.is_cuda()) return std::nullopt;
  const c10::cuda::CUDAGuard guard(device);
  // A sticky error comes back from every call; any other error is cleared by reading it.
  (void)cudaGetLastError();
  const cudaError_t error = cudaDeviceSynchronize();
  if (error == cudaSuccess || !is_sticky_error_code(static_cast<int32_t>(error))) {
    (void)cudaGetLastError();
    return std::nullopt;
  }
  return std::string(cudaGetErrorName(error)) + ": " + cudaGetErrorString(error);
#else
  (void)device;
  return std::nullopt;
#endif
}

}  // namespace qwenvl::kernels
