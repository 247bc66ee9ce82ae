#include "runtime/replicas/replica_options.h"

#include <string>

namespace qwenvl::runtime {

std::vector<EngineOptions> replica_options(const EngineOptions& options, const Plan& plan) {
  std::vector<EngineOptions> out;
  for (const DevicePlan& d : plan.devices) {
    EngineOptions one = options;
    one.device = d.device;
    one.devices.clear();
    one.placement = "auto";
    one.dtype = plan.dtype;  // the plan's bytes assume it ("auto" resolves over the whole list)
    if (options.kv_cache_bytes > 0) {
      const int64_t needs = d.memory.total() - d.memory.kv_cache + options.kv_cache_bytes;
      if (needs > d.budget_bytes)
        throw Error("kv_cache_bytes " + std::to_string(options.kv_cache_bytes) + " does not fit on " + d.device +
                    ": with the rest of its plan it needs " + std::to_string(needs) + " bytes, " +
                    std::to_string(needs - d.budget_bytes) + " more than its budget of " +
                    std::to_string(d.budget_bytes) + " (" + d.budget_source + ")");
    } else {
      one.kv_cache_bytes = d.memory.kv_cache;
    }
    out.push_back(std::move(one));
  }
  return out;
}

}  // namespace qwenvl::runtime
