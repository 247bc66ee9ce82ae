// How long a device takes for what it holds (StageRoles): each part's FLOPs and bytes for a decode
// step and a prefill chunk (and the vision tower's for one image) at the device's effective rates,
// as a roofline (each operation takes the longer of its compute and its memory traffic). The rates
// come from a named profile, or from measurement where the device is present (Rates is the seam).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/placement/device_profile.h"
#include "runtime/placement/model_parts.h"
#include "runtime/placement/stage_roles.h"
#include "runtime/placement/workload.h"

namespace qwenvl::runtime::placement {

struct Rates {
  double flops = 0;      // effective FLOP/s
  double bandwidth = 0;  // effective bytes/s
};

// A profile's peaks times its efficiencies, for the dtype, divided among `sharing` entries of one
// device (stages or replicas sharing a card each get an even share of it).
Rates profile_rates(const DeviceProfile& profile, int64_t dtype_bytes, int sharing);

// Seconds.
struct StageTimes {
  double decode = 0;   // one decode step of its rows
  double prefill = 0;  // one prefill chunk
  double vision = 0;   // one image of the mean request
  double step = 0;     // its share of one step of the workload: decode, the amortised prefill and
                       // vision of the requests that join (rows / new_tokens of them a step), hand-offs
};

class TimeModel {
 public:
  TimeModel(const ModelParts& parts, const Workload& workload);

  // rows: the sequences of one decode step on this stage (a pipeline's micro-batch).
  StageTimes stage(const StageRoles& roles, const Rates& rates, int64_t rows) const;

 private:
  double decode_step(const StageRoles& roles, const Rates& rates, int64_t rows) const;
  double prefill_chunk(const StageRoles& roles, const Rates& rates) const;
  double vision_image(const Rates& rates) const;

  const ModelParts& parts_;
  const Workload& w_;
  std::vector<int64_t> layer_matmul_, layer_elements_;  // prefix sums over the decoder layers
};

}  // namespace qwenvl::runtime::placement
