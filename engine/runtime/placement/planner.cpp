#include "runtime/placement/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "runtime/placement/device_list.h"
#include "runtime/placement/fit_advice.h"
#include "runtime/placement/layer_split.h"
#include "runtime/placement/model_parts.h"
#include "runtime/placement/partition_search.h"
#include "runtime/placement/workload.h"

namespace qwenvl {
namespace runtime::placement {
namespace {

// Everything one attempt at a request needs, built in order (each refers to the ones before).
struct Attempt {
  Attempt(const model::ModelConfig& config, const model::ProcessorConfig& image, const PlanRequest& request,
          const DeviceFacts& facts)
      : specs(parse_devices(request.devices)),
        parts(model_parts(config)),
        workload(
            resolve_workload(request, parts, image,
                             std::any_of(specs.begin(), specs.end(), [](const DeviceSpec& s) { return is_cuda(s); }))),
        entries(device_entries(specs, facts, workload.dtype_bytes, notes)),
        search(parts, workload, entries) {}
  Attempt(const Attempt&) = delete;  // the search refers to the members before it

  // The placement the request's mode asks for among those that fit; nullopt when none does.
  std::optional<Candidate> choose(Placement mode) const {
    std::optional<Candidate> pipeline;
    if (mode != Placement::kReplicas) pipeline = search.fastest_pipeline();
    // One device: the pipeline of one stage is the plan (a "replica" of one is the same thing).
    if (mode == Placement::kPipeline || (mode == Placement::kAuto && entries.size() == 1)) return pipeline;
    std::optional<Candidate> replicas = search.replicas();
    if (!search.fits(*replicas)) replicas.reset();
    if (mode == Placement::kReplicas || !pipeline) return replicas;
    if (replicas && search.tokens_per_second(*replicas) >= search.tokens_per_second(*pipeline)) return replicas;
    return pipeline;
  }

  std::vector<std::string> notes;
  std::vector<DeviceSpec> specs;
  ModelParts parts;
  Workload workload;
  std::vector<DeviceEntry> entries;
  PartitionSearch search;
};

[[noreturn]] void nothing_fits(const Attempt& a, const model::ModelConfig& config, const model::ProcessorConfig& image,
                               const PlanRequest& request, const DeviceFacts& facts, const std::string& model_name) {
  const std::string what =
      fmt::format("{} ({} decoder layers, {}) does not fit on {} with placement {}", model_name, a.parts.layers.size(),
                  a.workload.dtype, request.devices, placement_name(request.placement));
  // The closest placement: the pipeline whose worst device is least over (a pipeline needs the
  // least of each device), or the replicas where the mode asks for them.
  std::optional<Candidate> closest;
  if (request.placement != Placement::kReplicas) closest = a.search.least_short_pipeline();
  if (!closest && request.placement != Placement::kPipeline) closest = a.search.replicas();
  if (!closest) throw Error(fmt::format("{}: {}", what, a.search.structural_problem()));
  const std::vector<std::string> ways =
      what_would_fit(request, a.workload, a.entries, a.parts.token_pixels, [&](const PlanRequest& changed) {
        try {
          return Attempt(config, image, changed, facts).choose(changed.placement).has_value();
        } catch (const Error&) {
          return false;
        }
      });
  std::string advice = "no single change of max context, image size, batch, images a step or device count fits";
  if (!ways.empty()) {
    advice = "it would fit with " + ways.front();
    for (size_t i = 1; i < ways.size(); ++i) advice += ", or " + ways[i];
  }
  throw Error(fmt::format("{}: {}; {} (max batch {}, max context {}, images of {} tokens, {} a step)", what,
                          missing_bytes(a.search, *closest, a.entries), advice, a.workload.max_batch,
                          a.workload.max_context, a.workload.image_tokens, a.workload.images_per_step));
}

}  // namespace

Plan make_plan(const model::ModelConfig& config, const model::ProcessorConfig& image, const PlanRequest& request,
               const DeviceFacts& facts, const std::string& model_name) {
  const Attempt a(config, image, request, facts);
  std::optional<Candidate> chosen;
  if (request.split) {
    // A split given by hand is priced, not searched: over a budget it is still the plan (Plan::fits).
    if (request.placement == Placement::kReplicas)
      throw Error("layer split: a split is a pipeline; placement replicas takes none (use auto or pipeline)");
    chosen =
        given_pipeline(*request.split, a.entries, static_cast<int64_t>(a.parts.layers.size()), a.workload.max_batch);
  } else {
    if (request.placement == Placement::kPipeline && !a.search.structural_problem().empty())
      throw Error(a.search.structural_problem());
    chosen = a.choose(request.placement);
    if (!chosen) nothing_fits(a, config, image, request, facts, model_name);
  }

  Plan plan;
  plan.mode = chosen->mode;
  plan.model = model_name;
  plan.dtype = a.workload.dtype;
  plan.text_layers = static_cast<int64_t>(a.parts.layers.size());
  plan.vision_blocks = a.parts.vision_depth;
  plan.request = request;
  plan.request.dtype = a.workload.dtype;
  plan.request.max_pixels = a.workload.max_pixels;
  plan.request.images_per_step = static_cast<int>(a.workload.images_per_step);
  plan.request.prefill_chunk_tokens = a.workload.prefill_chunk;
  plan.request.image_pixels = a.workload.request_image_pixels;
  plan.request.new_tokens = static_cast<int>(a.workload.new_tokens);
  plan.micro_batches = chosen->mode == Placement::kPipeline ? chosen->micro_batches : 1;
  plan.tokens_per_second = a.search.tokens_per_second(*chosen);
  plan.notes = a.notes;
  plan.given = request.split.has_value();
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const DeviceEntry& e = a.entries[i];
    const StageRoles& r = chosen->roles[i];
    DevicePlan d;
    d.device = e.spec.device;
    d.profile = e.profile->name;
    d.budget_bytes = e.budget;
    d.budget_source = e.budget_source;
    if (chosen->mode == Placement::kReplicas) d.replica = static_cast<int>(i);
    if (chosen->mode == Placement::kPipeline && r.layers() > 0) {
      d.stage = 0;
      for (const StageRoles& other : chosen->roles)
        if (other.layers() > 0 && other.first_layer < r.first_layer) ++d.stage;
    }
    d.first_layer = r.first_layer;
    d.end_layer = r.end_layer;
    d.embeddings = r.embeddings;
    d.lm_head = r.lm_head;
    d.vision_tower = r.vision;
    d.memory = a.search.memory(*chosen, i);
    const StageTimes t = a.search.times(*chosen, i);
    d.decode_ms = t.decode * 1e3;
    d.prefill_ms = t.prefill * 1e3;
    d.vision_ms = t.vision * 1e3;
    d.step_ms = t.step * 1e3;
    plan.devices.push_back(d);
  }
  std::vector<std::string> shared;
  for (const DeviceEntry& e : a.entries)
    if (e.sharing > 1 && std::find(shared.begin(), shared.end(), e.spec.device) == shared.end()) {
      shared.push_back(e.spec.device);
      plan.notes.push_back(fmt::format("{}: {} entries share it: each is timed at 1/{} of its rates", e.spec.device,
                                       e.sharing, e.sharing));
    }
  return plan;
}

}  // namespace runtime::placement

Plan plan(const PlanRequest& request) {
  namespace fs = std::filesystem;
  if (request.model_dir.empty()) throw Error("no model directory given");
  const model::ModelFiles files = model::load_model_files(request.model_dir);
  std::string name = fs::path(request.model_dir).filename().string();
  if (name.empty()) name = fs::path(request.model_dir).parent_path().filename().string();  // "dir/"
  return runtime::placement::make_plan(files.model, files.image, request, runtime::placement::host_facts(), name);
}

}  // namespace qwenvl
