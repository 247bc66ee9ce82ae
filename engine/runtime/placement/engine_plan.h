// The plan an engine runs from its options: EngineOptions read as a PlanRequest (its device list,
// placement, batch, context, KV blocks, dtype, graphs), planned before anything is loaded.
#pragma once

#include <optional>

#include "qwenvl/engine.h"
#include "qwenvl/placement.h"

namespace qwenvl::runtime::placement {

// The options as the planner's request (the device list: `devices`, else `device`).
PlanRequest plan_request(const EngineOptions& options);

// The plan for an engine with several device entries or a cap; nullopt for one device without a
// cap, which runs as it always has, unplanned. Throws Error for a bad list or placement, or with the
// planner's reason when nothing fits.
std::optional<Plan> plan_for_engine(const EngineOptions& options);

}  // namespace qwenvl::runtime::placement
