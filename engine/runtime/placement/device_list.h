// The device list of qwenvl/placement.h (parse_devices, parse_placement): one parser for every
// front end. What the planner needs beyond the public DeviceSpec lives here.
#pragma once

#include <string>
#include <vector>

#include "qwenvl/placement.h"

namespace qwenvl::runtime::placement {

// The most entries a list may have: one host has at most 16 GPUs, each shared by a few stages.
constexpr size_t kMaxDeviceEntries = 64;

inline bool is_cuda(const DeviceSpec& spec) { return spec.device != "cpu"; }

// The micro-batches a pipeline's step is split into, from the devices of its stages with layers
// (normalised names): one per GPU, since stages sharing a card take turns on its SMs and a split
// step would only shrink its GEMMs (and, in bf16, round differently from one stage: seen on an
// H100); one per CPU stage, whose worker threads run side by side.
int pipeline_micro_batches(const std::vector<std::string>& stage_devices);

// "cuda:0=22.0 GiB", "cuda:1@h200", "cpu": the entry as a person would write it.
std::string describe(const DeviceSpec& spec);

}  // namespace qwenvl::runtime::placement
