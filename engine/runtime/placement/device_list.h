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

// "cuda:0=22.0 GiB", "cuda:1@h200", "cpu": the entry as a person would write it.
std::string describe(const DeviceSpec& spec);

}  // namespace qwenvl::runtime::placement
