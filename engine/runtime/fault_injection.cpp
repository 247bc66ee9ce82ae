// The out-of-memory test hook of fault_injection.h.
#include "runtime/fault_injection.h"

#include <c10/util/Exception.h>

#include <atomic>

namespace qwenvl::runtime {
namespace {
std::atomic<int> armed_prefill_failures{0};
}  // namespace

void inject_prefill_out_of_memory(int count) { armed_prefill_failures.store(count); }

void throw_if_out_of_memory_injected() {
  int armed = armed_prefill_failures.load();
  while (armed > 0)
    if (armed_prefill_failures.compare_exchange_weak(armed, armed - 1))
      throw c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                                  "injected by a test (fault_injection.h)");
}

}  // namespace qwenvl::runtime
