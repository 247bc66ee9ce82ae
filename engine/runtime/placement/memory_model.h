// The bytes one device needs at its peak for what it holds (StageRoles): the weights of its parts,
// its layers' share of the paged KV cache, the largest transient working set (the vision tower's
// forward at the largest images a step admits, a prefill chunk through one layer, logits), the
// cuBLAS workspaces and the decode graphs' pool, and a margin for the caching allocator's rounding
// and fragmentation. Each term mirrors what the engine allocates (engine/nn, engine/runtime,
// kernels/); every constant says where it comes from.
#pragma once

#include <cstdint>
#include <vector>

#include "qwenvl/placement.h"
#include "runtime/placement/model_parts.h"
#include "runtime/placement/stage_roles.h"
#include "runtime/placement/workload.h"

namespace qwenvl::runtime::placement {

// What a device is, for the memory model: the host, or a CUDA device with its multiprocessors.
struct MemoryTarget {
  bool cuda = false;
  int sm_count = 0;
};

class MemoryModel {
 public:
  MemoryModel(const ModelParts& parts, const Workload& workload);

  // micro_batch: the sequences one decode step of this stage carries (its graphs are recorded up to
  // it); the KV cache always holds every sequence of the workload.
  MemoryEstimate stage(const StageRoles& roles, const MemoryTarget& target, int64_t micro_batch) const;

  // The tensors' bytes alone (the planner's weights, checked against real checkpoints).
  int64_t weight_bytes(const StageRoles& roles) const;

 private:
  int64_t weight_elements(const StageRoles& roles) const;
  int64_t weight_rounding(const StageRoles& roles) const;
  int64_t kv_bytes(int64_t layers) const;
  int64_t activation_bytes(const StageRoles& roles, const MemoryTarget& target, int64_t micro_batch) const;
  int64_t workspace_bytes(const StageRoles& roles, const MemoryTarget& target, int64_t micro_batch) const;

  bool records_graphs(const MemoryTarget& target) const;
  int64_t prefill_peak(const StageRoles& roles, const MemoryTarget& target) const;
  int64_t decode_layer_peak(int64_t rows, const MemoryTarget& target) const;
  int64_t vision_peak(const MemoryTarget& target) const;

  const ModelParts& parts_;
  const Workload& w_;
  // Prefix sums over the decoder layers: elements, and bytes the CUDA caching allocator adds to them.
  std::vector<int64_t> layer_elements_, layer_rounding_;
  int64_t embeddings_rounding_ = 0, lm_head_rounding_ = 0, final_norm_rounding_ = 0, vision_rounding_ = 0;
};

}  // namespace qwenvl::runtime::placement
