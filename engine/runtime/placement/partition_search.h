// The search over placements. A pipeline gives each device of the list, in order, a contiguous
// range of the language model's layers (at least one), the first also the embeddings and the last
// the LM head; the vision tower runs on one of them, or alone on one device of its own. Among the
// placements where every device fits its budget it finds the one whose slowest device is fastest,
// exactly: a dynamic programme over (devices, layers placed, vision placed), for each choice of a
// dedicated vision device. Replicas put the whole model on every device.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qwenvl/placement.h"
#include "runtime/placement/device_budget.h"
#include "runtime/placement/memory_model.h"
#include "runtime/placement/model_parts.h"
#include "runtime/placement/stage_roles.h"
#include "runtime/placement/time_model.h"
#include "runtime/placement/workload.h"

namespace qwenvl::runtime::placement {

struct Candidate {
  Placement mode = Placement::kPipeline;  // kPipeline or kReplicas
  std::vector<StageRoles> roles;          // one per entry of the device list
  int micro_batches = 1;                  // pipeline: one per stage with layers
  int64_t rows = 0;                       // sequences of one decode step on each device
};

class PartitionSearch {
 public:
  PartitionSearch(const ModelParts& parts, const Workload& workload, const std::vector<DeviceEntry>& entries);

  // Why no pipeline can be formed over these devices at all (more devices than layers); empty if one can.
  std::string structural_problem() const;
  // The pipeline whose slowest device is fastest among those that fit; nullopt when none fits.
  std::optional<Candidate> fastest_pipeline() const;
  // The pipeline whose worst device is the least over its budget (what is missing when none fits).
  std::optional<Candidate> least_short_pipeline() const;
  Candidate replicas() const;

  MemoryEstimate memory(const Candidate& c, size_t entry) const;
  StageTimes times(const Candidate& c, size_t entry) const;
  bool fits(const Candidate& c) const;
  // Generated tokens per second of all devices together: a pipeline's max_batch sequences advance a
  // token every micro_batches x its slowest step; each replica's max_batch every own step.
  double tokens_per_second(const Candidate& c) const;

 private:
  // What a device costs holding `roles` at `rows` rows a step: lower is better, infinity excludes it.
  using Objective = std::function<double(size_t entry, const StageRoles& roles, int64_t rows)>;
  // per_cycle: the objective is a time, compared per pipeline cycle (times the micro-batches).
  std::optional<Candidate> best_pipeline(const Objective& objective, bool per_cycle) const;
  // The best split of all layers over `chain` (entries in order), the vision tower on one of them
  // when place_vision; writes each chain entry's roles into `roles`. Returns the worst cost.
  double best_chain(const std::vector<size_t>& chain, bool place_vision, int64_t rows, const Objective& objective,
                    std::vector<StageRoles>& roles) const;

  const ModelParts& parts_;
  const Workload& w_;
  const std::vector<DeviceEntry>& entries_;
  MemoryModel memory_;
  TimeModel time_;
};

}  // namespace qwenvl::runtime::placement
