// Whether a CUDA error leaves the device's context unusable: CUDA's "sticky" errors (an illegal
// address, a failed launch, a device-side assert...) are returned by every later call in the
// process, so nothing more can run there, unlike running out of memory or a bad argument. The
// engine stops for good on these instead of failing one batch and serving on.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

namespace qwenvl::kernels {

// True for the cudaError_t codes that poison the context (CUDA runtime API, cudaError enum).
bool is_sticky_error_code(int32_t cuda_error);

// The sticky error `device` is in, as CUDA words it, or nullopt when it can still run work. Waits
// for the device's queued work (for the error paths only). A CPU device: nullopt.
std::optional<std::string> sticky_error(const at::Device& device);

}  // namespace qwenvl::kernels
