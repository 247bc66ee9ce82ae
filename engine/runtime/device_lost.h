// A device fault the engine cannot serve on from: one that leaves the device's context unusable
// (kernels/device/sticky_error.h), as opposed to running out of memory or a bad input, which fail
// one batch. The scheduler then fails every request the engine holds with the reason, and every
// later one (issue 14, item 4).
#pragma once

#include <ATen/ATen.h>

#include <exception>
#include <optional>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::runtime {

// Thrown in place of such a fault where it was classified (a pipeline stage, on its own device);
// what() is the reason, for a person.
class DeviceLost : public Error {
 public:
  using Error::Error;
};

// The reason when `e`, thrown by work on `device`, means the device is lost: a DeviceLost, a CUDA
// error libtorch reports with a sticky code (c10::AcceleratorError), or any other error after
// which `device` itself reports a sticky error. nullopt when the engine may serve on.
std::optional<std::string> device_lost_reason(const std::exception& e, const at::Device& device);

}  // namespace qwenvl::runtime
