// The test hooks of fault_injection.h.
#include "runtime/fault_injection.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>

namespace qwenvl::runtime {
namespace {
std::atomic<int> armed_prefill_failures{0};

constexpr int64_t kNoEntry = -1;
std::atomic<int64_t> device_lost_entry{kNoEntry};
std::atomic<int> device_lost_skips{0};
constexpr int32_t kCudaErrorIllegalAddress = 700;  // sticky (kernels/device/sticky_error.h)
}  // namespace

void inject_prefill_out_of_memory(int count) { armed_prefill_failures.store(count); }

void throw_if_out_of_memory_injected() {
  int armed = armed_prefill_failures.load();
  while (armed > 0)
    if (armed_prefill_failures.compare_exchange_weak(armed, armed - 1))
      throw c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                                  "injected by a test (fault_injection.h)");
}

void inject_device_lost(size_t entry, int skip) {
  device_lost_entry.store(kNoEntry);
  device_lost_skips.store(skip);
  device_lost_entry.store(static_cast<int64_t>(entry));
}

void throw_if_device_lost_injected(size_t entry) {
  int64_t armed = static_cast<int64_t>(entry);
  if (device_lost_entry.load() != armed) return;
  if (device_lost_skips.fetch_sub(1) > 0) return;
  if (!device_lost_entry.compare_exchange_strong(armed, kNoEntry)) return;
  throw c10::AcceleratorError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)}, kCudaErrorIllegalAddress,
                              "CUDA error: an illegal memory access was encountered (injected by a test: "
                              "fault_injection.h)");
}

}  // namespace qwenvl::runtime
