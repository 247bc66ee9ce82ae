// The planner behind qwenvl::plan, on a configuration already read: the public entry point reads
// the model directory and the host's memory, then calls this; tests call it with shapes and
// facts of their own.
#pragma once

#include <string>

#include "model/config.h"
#include "qwenvl/placement.h"
#include "runtime/placement/device_budget.h"

namespace qwenvl::runtime::placement {

Plan make_plan(const model::ModelConfig& config, const model::ProcessorConfig& image, const PlanRequest& request,
               const DeviceFacts& facts, const std::string& model_name);

}  // namespace qwenvl::runtime::placement
