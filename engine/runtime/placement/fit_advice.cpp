#include "runtime/placement/fit_advice.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/placement/byte_size.h"
#include "runtime/placement/device_list.h"

namespace qwenvl::runtime::placement {
namespace {

// The largest value in [low, high] for which fits(value) holds, given that it holds for every value
// below one that does; nullopt when not even `low` fits.
std::optional<int64_t> largest_fitting(int64_t low, int64_t high, const std::function<bool(int64_t)>& fits) {
  if (high < low || !fits(low)) return std::nullopt;
  while (low < high) {
    const int64_t mid = low + (high - low + 1) / 2;
    if (fits(mid))
      low = mid;
    else
      high = mid - 1;
  }
  return low;
}

}  // namespace

std::string shortfall(const std::string& device, const MemoryEstimate& m, int64_t budget) {
  return fmt::format(
      "{} needs {} of its {} ({} short: weights {}, KV cache {}, activations {}, workspace {}, margin {})", device,
      format_bytes(m.total()), format_bytes(budget), format_bytes(m.total() - budget), format_bytes(m.weights),
      format_bytes(m.kv_cache), format_bytes(m.activations), format_bytes(m.workspace), format_bytes(m.margin));
}

std::string missing_bytes(const PartitionSearch& search, const Candidate& closest,
                          const std::vector<DeviceEntry>& entries) {
  std::string text;
  for (size_t i = 0; i < entries.size(); ++i) {
    const MemoryEstimate m = search.memory(closest, i);
    if (m.total() <= entries[i].budget) continue;
    text += (text.empty() ? "" : "; ") + shortfall(entries[i].spec.device, m, entries[i].budget);
  }
  return text;
}

std::vector<std::string> what_would_fit(const PlanRequest& request, const Workload& w,
                                        const std::vector<DeviceEntry>& entries, int64_t token_pixels,
                                        const std::function<bool(const PlanRequest&)>& fits) {
  std::vector<std::string> ways;
  auto changed = [&](auto change) {
    return [&, change](int64_t value) {
      PlanRequest r = request;
      change(r, value);
      return fits(r);
    };
  };
  if (auto c = largest_fitting(2, w.max_context - 1, changed([](PlanRequest& r, int64_t v) { r.max_context = v; })))
    ways.push_back(fmt::format("a max context of {} tokens", *c));
  if (auto t = largest_fitting(1, w.image_tokens - 1,
                               changed([&](PlanRequest& r, int64_t v) { r.max_pixels = v * token_pixels; })))
    ways.push_back(fmt::format("images of at most {} pixels ({} tokens)", *t * token_pixels, *t));
  if (auto b = largest_fitting(1, w.max_batch - 1, changed([&](PlanRequest& r, int64_t v) {
                                 r.max_batch = static_cast<int>(v);
                                 r.images_per_step =
                                     std::min<int>(static_cast<int>(v), static_cast<int>(w.images_per_step));
                               })))
    ways.push_back(fmt::format("a max batch of {} sequences", *b));
  if (auto i = largest_fitting(1, w.images_per_step - 1,
                               changed([](PlanRequest& r, int64_t v) { r.images_per_step = static_cast<int>(v); })))
    ways.push_back(fmt::format("at most {} images a step", *i));

  // More devices like the cuda entry with the largest budget (a replica needs the whole model
  // anyway): new cards, numbered past the list's.
  const DeviceEntry* largest = nullptr;
  int next_index = 0;
  for (const DeviceEntry& e : entries) {
    if (!is_cuda(e.spec)) continue;
    next_index = std::max(next_index, std::stoi(e.spec.device.substr(5)) + 1);
    if (largest == nullptr || e.budget > largest->budget) largest = &e;
  }
  if (largest != nullptr && request.placement != Placement::kReplicas) {
    std::string more = request.devices;
    for (size_t added = 1; entries.size() + added <= kMaxDeviceEntries; ++added) {
      DeviceSpec copy = largest->spec;
      copy.device = fmt::format("cuda:{}", next_index + static_cast<int>(added) - 1);
      more += "," + describe(copy);
      PlanRequest r = request;
      r.devices = more;
      if (!fits(r)) continue;
      ways.push_back(fmt::format("{} more device{} like {} ({})", added, added == 1 ? "" : "s", largest->spec.device,
                                 format_bytes(largest->budget)));
      break;
    }
  }
  return ways;
}

}  // namespace qwenvl::runtime::placement
