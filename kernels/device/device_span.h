// Whether a range of bytes that a caller says lies in CUDA device memory can be read by kernels on
// `device` (the engine's frames from a GPU decoder): the driver's attributes of the pointer
// (cuPointerGetAttributes) name its device, its context and its allocation. Reading a pointer that
// fails these checks would fault the device and poison its context; the check costs microseconds.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace qwenvl::kernels {

// "" when [begin, begin + bytes) is device memory of `device` (a CUDA device), allocated in its
// primary context (the one the runtime API and libtorch use) or context-free (virtual memory
// management, stream-ordered pools), and inside one allocation; otherwise why not, for a person.
// Builds without CUDA answer that they have none.
std::string check_device_span(const void* begin, int64_t bytes, const at::Device& device);

}  // namespace qwenvl::kernels
