// A plan's device map read as stages (pipeline_layout.h).
#include "runtime/stages/pipeline_layout.h"

#include <algorithm>

#include "qwenvl/error.h"

namespace qwenvl::runtime::stages {

std::vector<StageSpec> stage_specs(const Plan& plan, const StageTuning& tuning,
                                   const std::function<at::Device(const std::string&)>& resolve) {
  if (plan.mode != Placement::kPipeline) throw Error("pipeline: the plan is not a pipeline");
  std::vector<StageSpec> out;
  for (size_t i = 0; i < plan.devices.size(); ++i) {
    const DevicePlan& d = plan.devices[i];
    if (d.end_layer == d.first_layer && !d.vision_tower) continue;  // holds nothing of the model
    StageSpec s;
    s.device = resolve(d.device);
    s.entry = i;
    s.part = nn::ModelPart{d.first_layer, d.end_layer, d.embeddings, d.lm_head, d.vision_tower};
    if (i < tuning.delay_per_row.size()) s.delay_per_row = tuning.delay_per_row[i];
    if (tuning.before_forward) s.before_forward = [hook = tuning.before_forward, i] { hook(i); };
    out.push_back(s);
  }
  return out;
}

int micro_batches(const Plan& plan, const StageTuning& tuning) {
  return tuning.micro_batches > 0 ? tuning.micro_batches : std::max(plan.micro_batches, 1);
}

}  // namespace qwenvl::runtime::stages
