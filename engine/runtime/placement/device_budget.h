// Each entry of a device list as the planner uses it: its profile and rates, and the bytes it may
// use. A cap is the budget; without one a cuda entry gets the card's memory (measured where known,
// else its profile's) less the CUDA context, and a cpu entry the host's available memory less a
// reserve, shared evenly among the uncapped entries of that device once the capped ones are served.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qwenvl/placement.h"
#include "runtime/placement/device_profile.h"
#include "runtime/placement/memory_model.h"
#include "runtime/placement/time_model.h"

namespace qwenvl::runtime::placement {

// What is known of the host's devices beyond the list. Planning never touches a GPU: the engine
// fills device_total_bytes and measured_rates where it has the devices; the CLI leaves them empty.
struct DeviceFacts {
  std::optional<int64_t> host_available_bytes;        // the host's available memory (MemAvailable)
  std::map<std::string, int64_t> device_total_bytes;  // "cuda:0" -> its memory, measured
  std::map<std::string, Rates> measured_rates;        // "cuda:0" -> its effective rates, measured
};

// The host's available memory from /proc/meminfo (nothing else is measured while planning).
DeviceFacts host_facts();

struct DeviceEntry {
  DeviceSpec spec;
  const DeviceProfile* profile = nullptr;
  int64_t budget = 0;
  std::string budget_source;  // for a person: where the budget comes from
  int sharing = 1;            // entries of the list on the same device (this one included)
  Rates rates;
  MemoryTarget target;
};

// notes: what a person should know about the budgets (profile memory assumed, caps over a card).
std::vector<DeviceEntry> device_entries(const std::vector<DeviceSpec>& specs, const DeviceFacts& facts,
                                        int64_t dtype_bytes, std::vector<std::string>& notes);

}  // namespace qwenvl::runtime::placement
