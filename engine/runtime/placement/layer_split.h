// A pipeline given by hand (qwenvl::LayerSplit, qwenvl::parse_layer_split): the check that it is a
// pipeline of this model over this device list, and the candidate it makes, which the search's own
// memory and time models then price.
#pragma once

#include <cstdint>
#include <vector>

#include "qwenvl/placement.h"
#include "runtime/placement/device_budget.h"
#include "runtime/placement/partition_search.h"

namespace qwenvl::runtime::placement {

// Throws Error naming the fault: a count of ranges other than the list's, a layer on no entry or on
// two, a range past the model's layers, an entry with neither layers nor the vision tower.
Candidate given_pipeline(const LayerSplit& split, const std::vector<DeviceEntry>& entries, int64_t layers,
                         int64_t max_batch);

}  // namespace qwenvl::runtime::placement
