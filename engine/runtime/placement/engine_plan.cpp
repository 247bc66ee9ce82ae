#include "runtime/placement/engine_plan.h"

#include <vector>

namespace qwenvl::runtime::placement {

PlanRequest plan_request(const EngineOptions& options) {
  PlanRequest r;
  r.model_dir = options.model_dir;
  r.devices = options.devices.empty() ? options.device : options.devices;
  r.placement = parse_placement(options.placement);
  r.dtype = options.dtype;
  r.max_batch = options.max_batch;
  r.max_context = options.max_context;
  r.kv_block_size = options.kv_block_size;
  r.cuda_graphs = options.cuda_graphs;
  return r;
}

std::optional<Plan> plan_for_engine(const EngineOptions& options) {
  const PlanRequest request = plan_request(options);  // checks the placement even when unplanned
  if (options.devices.empty()) return std::nullopt;
  const std::vector<DeviceSpec> specs = parse_devices(options.devices);
  if (specs.size() == 1 && !specs.front().cap_bytes) return std::nullopt;
  return plan(request);
}

}  // namespace qwenvl::runtime::placement
