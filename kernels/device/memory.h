// Device memory held by tensors, from libtorch's CUDA caching allocator (the counters that
// torch.cuda.max_memory_allocated() reads), so that the engine can report its peak without its
// clients including CUDA headers. Builds without CUDA answer 0.
#pragma once

#include <cstdint>

namespace qwenvl::kernels {

// Peak allocated bytes on CUDA device `index` since the process started or the last reset.
int64_t peak_device_memory_bytes(int index);
// Starts the peak over from the bytes allocated now.
void reset_peak_device_memory(int index);
// Bytes the caching allocator has reserved from CUDA device `index` now (held by tensors or cached).
int64_t reserved_device_memory_bytes(int index);
// Bytes a new allocation on CUDA device `index` can still get: the device's free memory and what the
// caching allocator holds unused. -1 where it cannot be told (no CUDA in this build).
int64_t available_device_memory_bytes(int index);
// Device memory in use on CUDA device `index` that is not the caching allocator's: the CUDA context,
// the loaded kernel images, the driver's own (and other processes' use of the card).
int64_t memory_outside_allocator_bytes(int index);

}  // namespace qwenvl::kernels
