// Test hooks of the runtime, not of the public API, so that tests on the CPU reach the paths of
// device faults. Out of memory: the next prefills fail as the device running out of memory would
// (c10::OutOfMemoryError): the scheduler fails that batch and serves on. A lost device: a forward
// fails as a CUDA error that poisons the context would (c10::AcceleratorError with CUDA's
// illegal-address code): the engine stops for good (device_lost.h). Inert unless a test arms them;
// an atomic load per prefill or forward.
#pragma once

#include <cstddef>

namespace qwenvl::runtime {

// The next `count` prefills (each the whole batch admitted together) throw as out of memory.
void inject_prefill_out_of_memory(int count);
// Throws c10::OutOfMemoryError when a failure is armed (and disarms one).
void throw_if_out_of_memory_injected();

// The forward of device-list entry `entry` (a one-device engine is entry 0) that comes after `skip`
// more of its forwards throws as a context-poisoning CUDA error; then the hook is disarmed.
void inject_device_lost(size_t entry, int skip);
// Called by entry `entry` before each forward: throws when the armed fault is due there.
void throw_if_device_lost_injected(size_t entry);

}  // namespace qwenvl::runtime
