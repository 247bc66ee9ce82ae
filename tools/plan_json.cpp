#include "plan_json.h"

namespace qwenvl::cli {

nlohmann::json plan_json(const Plan& plan) {
  const PlanRequest& r = plan.request;
  nlohmann::json devices = nlohmann::json::array();
  for (const DevicePlan& d : plan.devices) {
    const MemoryEstimate& m = d.memory;
    devices.push_back({
        {"device", d.device},
        {"profile", d.profile},
        {"budget_bytes", d.budget_bytes},
        {"budget_source", d.budget_source},
        {"replica", d.replica},
        {"stage", d.stage},
        {"first_layer", d.first_layer},
        {"end_layer", d.end_layer},
        {"embeddings", d.embeddings},
        {"lm_head", d.lm_head},
        {"vision_tower", d.vision_tower},
        {"memory",
         {{"weights", m.weights},
          {"kv_cache", m.kv_cache},
          {"activations", m.activations},
          {"workspace", m.workspace},
          {"margin", m.margin},
          {"total", m.total()}}},
        {"over_budget_bytes", d.over_budget_bytes()},
        {"decode_ms", d.decode_ms},
        {"prefill_ms", d.prefill_ms},
        {"vision_ms", d.vision_ms},
        {"step_ms", d.step_ms},
    });
  }
  return {
      {"model", plan.model},
      {"mode", placement_name(plan.mode)},
      {"given", plan.given},
      {"fits", plan.fits()},
      {"dtype", plan.dtype},
      {"text_layers", plan.text_layers},
      {"vision_blocks", plan.vision_blocks},
      {"request",
       {{"devices", r.devices},
        {"max_batch", r.max_batch},
        {"max_context", r.max_context},
        {"kv_block_size", r.kv_block_size},
        {"max_pixels", r.max_pixels},
        {"images_per_step", r.images_per_step},
        {"prefill_chunk_tokens", r.prefill_chunk_tokens},
        {"image_pixels", r.image_pixels},
        {"new_tokens", r.new_tokens},
        {"cuda_graphs", r.cuda_graphs}}},
      {"micro_batches", plan.micro_batches},
      {"tokens_per_second", plan.tokens_per_second},
      {"devices", devices},
      {"notes", plan.notes},
  };
}

}  // namespace qwenvl::cli
