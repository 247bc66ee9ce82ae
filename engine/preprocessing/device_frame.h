// A caller's frame in CUDA memory (FrameView::memory kCuda) checked before the engine reads it in
// place: where it says it lies against where the engine prepares frames, then, on that device,
// every plane against the driver's own account of the pointer (kernels::check_device_span), so that
// a wrong device, another CUDA context or strides past the allocation fail the request with the
// reason instead of faulting the device.
#pragma once

#include <c10/core/Device.h>

#include "qwenvl/engine.h"

namespace qwenvl::model {

// Throws qwenvl::Error naming the fault; `frame` has passed validate_frame (size, format, non-null
// planes, strides of at least a row). `device`: where the engine prepares frames.
void validate_device_frame(const FrameView& frame, const c10::Device& device);

}  // namespace qwenvl::model
