// The caller's frames in memory the engine owns. submit() must return at once and the caller may
// reuse its buffers, so copy_frame() takes the planes (any strides) into an OwnedFrame on the
// caller's thread; preprocess_image / preprocess_video read it later on the engine's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::model {

// A frame's pixels in memory the engine owns, rows packed (stride = row bytes).
struct OwnedFrame {
  FrameView layout;  // format, size, strides, timestamp and colorimetry; its planes are unset
  std::vector<uint8_t> bytes;
  size_t plane_offsets[3] = {0, 0, 0};

  // A view of the owned pixels; valid while this object lives and is not modified.
  FrameView view() const;
};

// Throws qwenvl::Error naming the fault: unknown format or matrix, non-positive or too large size,
// a null plane, a stride smaller than a row.
void validate_frame(const FrameView& frame);

// Validates, then copies the frame's planes (with their strides) into an OwnedFrame.
OwnedFrame copy_frame(const FrameView& frame);

}  // namespace qwenvl::model
