// The caller's frames in memory the engine owns. submit() must return at once and the caller may
// reuse its buffers, so copy_frame() takes the planes (any strides) into an OwnedFrame on the
// caller's thread; preprocess_image / preprocess_video read it later on the engine's thread.
// A frame in CUDA memory is not copied: its OwnedFrame keeps the caller's view, whose keep_alive
// holds the caller's buffer until the OwnedFrame goes (once the frame has been prepared).
#pragma once

#include <c10/core/Device.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::model {

// A frame's pixels in memory the engine owns, rows packed (stride = row bytes); or, for a frame in
// CUDA memory, the caller's view as it came (device planes with their strides, and keep_alive).
struct OwnedFrame {
  FrameView layout;  // format, size, strides, timestamp and colorimetry; host frames: its planes are unset
  std::vector<uint8_t> bytes;  // empty on the device
  size_t plane_offsets[3] = {0, 0, 0};

  bool on_device() const { return layout.memory == FrameMemory::kCuda; }
  // A view of the owned pixels (on the device: the caller's); valid while this object lives and is
  // not modified.
  FrameView view() const;
};

// Throws qwenvl::Error naming the fault: unknown format or matrix, non-positive or too large size,
// a null plane, a stride smaller than a row.
void validate_frame(const FrameView& frame);

// Validates, then copies the frame's planes (with their strides) into an OwnedFrame. A frame in CUDA
// memory is checked against `device`, where the engine prepares frames (validate_device_frame), and
// kept as it is.
OwnedFrame copy_frame(const FrameView& frame, const c10::Device& device = c10::Device(c10::kCPU));

}  // namespace qwenvl::model
