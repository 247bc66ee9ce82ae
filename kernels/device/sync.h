// Waits until the device has finished the work queued on its current stream, so that a host clock
// can time it (phase timings in benchmarks). A no-op on the CPU; builds without CUDA accept only CPU.
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::kernels {

void synchronize_device(at::Device device);

}  // namespace qwenvl::kernels
