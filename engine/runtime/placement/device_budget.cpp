#include "runtime/placement/device_budget.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "qwenvl/error.h"
#include "runtime/placement/byte_size.h"
#include "runtime/placement/device_list.h"

namespace qwenvl::runtime::placement {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

// Device memory that is not the caching allocator's: the CUDA context, the loaded kernel images
// (libtorch's, cuBLAS's, ours) and the driver's own. Assumed, to be measured: a device's total
// less its free memory right after the engine starts, less the allocator's reserved bytes.
constexpr int64_t kCudaContextBytes = 1 * kGiB;

// Host memory the plan leaves to everything else: the system, the tokenizer and chat template,
// the frames being prepared and the engine's other threads. Assumed.
constexpr int64_t kHostReserveBytes = 2 * kGiB;

}  // namespace

DeviceFacts host_facts() {
  DeviceFacts facts;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") facts.host_available_bytes = kib * 1024;
  }
  return facts;
}

std::vector<DeviceEntry> device_entries(const std::vector<DeviceSpec>& specs, const DeviceFacts& facts,
                                        int64_t dtype_bytes, std::vector<std::string>& notes) {
  std::vector<DeviceEntry> entries;
  for (const DeviceSpec& spec : specs) {
    DeviceEntry e;
    e.spec = spec;
    e.profile = &find_profile(spec.profile);
    e.target = {is_cuda(spec), e.profile->sm_count};
    e.sharing = 0;
    for (const DeviceSpec& other : specs) {
      if (other.device != spec.device) continue;
      ++e.sharing;
      if (other.profile != spec.profile)
        throw Error(fmt::format("device list: {} appears with profiles {} and {}: one device has one profile",
                                spec.device, spec.profile, other.profile));
    }
    entries.push_back(e);
  }
  // Budgets, one device at a time: its usable memory less the caps, shared among the uncapped entries.
  std::map<std::string, bool> done;
  for (const DeviceEntry& first : entries) {
    const std::string& device = first.spec.device;
    if (done[device]) continue;
    done[device] = true;
    int64_t total = 0, reserve = 0;
    std::string whence;
    if (is_cuda(first.spec)) {
      auto measured = facts.device_total_bytes.find(device);
      total = measured != facts.device_total_bytes.end() ? measured->second : first.profile->memory_bytes;
      reserve = kCudaContextBytes;
      whence = measured != facts.device_total_bytes.end()
                   ? fmt::format("{} measured", format_bytes(total))
                   : fmt::format("the {} profile's {} (no GPU is queried while planning)", first.profile->name,
                                 format_bytes(total));
      whence += fmt::format(" less {} for the CUDA context", format_bytes(reserve));
    } else {
      total = facts.host_available_bytes.value_or(0);
      reserve = kHostReserveBytes;
      whence = fmt::format("{} available on this host less {} kept for the rest of the process and the system",
                           format_bytes(total), format_bytes(reserve));
    }
    int64_t capped = 0;
    int uncapped = 0;
    for (const DeviceEntry& e : entries) {
      if (e.spec.device != device) continue;
      if (e.spec.cap_bytes)
        capped += *e.spec.cap_bytes;
      else
        ++uncapped;
    }
    const int64_t usable = total - reserve;
    if (capped > usable && (is_cuda(first.spec) ? true : facts.host_available_bytes.has_value()))
      notes.push_back(fmt::format("{}: its caps add up to {}, more than the {} it has ({})", device,
                                  format_bytes(capped), format_bytes(std::max<int64_t>(usable, 0)), whence));
    const int64_t share = uncapped > 0 ? std::max<int64_t>(usable - capped, 0) / uncapped : 0;
    for (DeviceEntry& e : entries) {
      if (e.spec.device != device) continue;
      if (e.spec.cap_bytes) {
        e.budget = *e.spec.cap_bytes;
        e.budget_source = "its cap";
      } else {
        e.budget = share;
        e.budget_source = capped > 0 || uncapped > 1
                              ? fmt::format("{}, less the caps of its other entries, shared by {}", whence, uncapped)
                              : whence;
      }
      e.rates = profile_rates(*e.profile, dtype_bytes, e.sharing);
      auto measured = facts.measured_rates.find(device);
      if (measured != facts.measured_rates.end())
        e.rates = {measured->second.flops / e.sharing, measured->second.bandwidth / e.sharing};
    }
    if (uncapped > 0)
      notes.push_back(fmt::format("{}: no cap: {}{} = {}{}", device, whence,
                                  capped > 0 ? ", less the caps of its other entries" : "", format_bytes(share),
                                  uncapped > 1 ? fmt::format(" for each of its {} uncapped entries", uncapped) : ""));
  }
  return entries;
}

}  // namespace qwenvl::runtime::placement
