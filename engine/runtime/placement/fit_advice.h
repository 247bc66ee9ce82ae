// When nothing fits: how much is missing on which device, and which single change of the request
// would fit, each computed by planning again (a shorter max context, fewer pixels per image, fewer
// sequences, fewer images a step, more devices like the largest one), never a canned hint.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "qwenvl/placement.h"
#include "runtime/placement/device_budget.h"
#include "runtime/placement/partition_search.h"
#include "runtime/placement/workload.h"

namespace qwenvl::runtime::placement {

// "cuda:0 needs 25.3 GiB of its 22.0 GiB (3.3 GiB short: weights ..., KV cache ...)" for one device.
std::string shortfall(const std::string& device, const MemoryEstimate& m, int64_t budget);

// shortfall() for every device of `closest` over its budget, joined by "; ".
std::string missing_bytes(const PartitionSearch& search, const Candidate& closest,
                          const std::vector<DeviceEntry>& entries);

// Phrases such as "a max context of 4096 tokens", each the largest value that fits with everything
// else as requested; `fits` plans the changed request. Empty when no single change fits.
std::vector<std::string> what_would_fit(const PlanRequest& request, const Workload& workload,
                                        const std::vector<DeviceEntry>& entries, int64_t token_pixels,
                                        const std::function<bool(const PlanRequest&)>& fits);

}  // namespace qwenvl::runtime::placement
