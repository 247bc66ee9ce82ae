// A test hook of the runtime, not of the public API: makes the next prefills fail as the device
// running out of memory would (c10::OutOfMemoryError), so that tests on the CPU reach the
// scheduler's out-of-memory path. Inert unless a test arms it; one atomic load per prefill.
#pragma once

namespace qwenvl::runtime {

// The next `count` prefills (each the whole batch admitted together) throw as out of memory.
void inject_prefill_out_of_memory(int count);
// Throws c10::OutOfMemoryError when a failure is armed (and disarms one).
void throw_if_out_of_memory_injected();

}  // namespace qwenvl::runtime
