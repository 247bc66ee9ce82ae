// The stages of a planned pipeline (qwenvl::plan) as the executor builds them, so that the planner
// and the executor agree: each entry of the device list that holds layers or the vision tower, with
// its part of the model, in list order.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "qwenvl/placement.h"
#include "runtime/stages/staged_executor.h"
#include "runtime/stages/stage_tuning.h"

namespace qwenvl::runtime::stages {

// resolve: a plan's device name ("cpu", "cuda:1") as the device it is here (throws where absent).
std::vector<StageSpec> stage_specs(const Plan& plan, const StageTuning& tuning,
                                   const std::function<at::Device(const std::string&)>& resolve);

// The micro-batches a step of the plan is split into: the tuning's, else the plan's (the planner
// sized each stage's activations for them: placement::pipeline_micro_batches).
int micro_batches(const Plan& plan, const StageTuning& tuning);

}  // namespace qwenvl::runtime::stages
