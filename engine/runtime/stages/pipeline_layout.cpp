// A plan's device map read as stages (pipeline_layout.h).
#include "runtime/stages/pipeline_layout.h"

#include <algorithm>
#include <set>
#include <string>

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

// Stages on one GPU take turns on the same SMs: splitting a step there only makes every GEMM
// smaller, and in bf16 a different split rounds differently, so ids drift from one stage's. Seen
// on an H100 (tests/gpu/test_gpu_pipeline.cpp, 7B width, batch 64): two stages on cuda:0 gave 93%
// of one stage's frames/s with one micro-batch and 73% with two. CPU stages run on threads of
// their own, side by side, so each counts.
int micro_batches(const Plan& plan, const StageTuning& tuning) {
  if (tuning.micro_batches > 0) return tuning.micro_batches;
  std::set<std::string> cards;
  int cpu_stages = 0;
  for (const DevicePlan& d : plan.devices) {
    if (d.end_layer == d.first_layer) continue;
    if (d.device.rfind("cuda", 0) == 0) cards.insert(d.device == "cuda" ? "cuda:0" : d.device);
    else ++cpu_stages;
  }
  return std::max(cpu_stages + static_cast<int>(cards.size()), 1);
}

}  // namespace qwenvl::runtime::stages
