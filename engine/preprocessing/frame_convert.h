// Frames from the caller to packed 8-bit RGB, as GStreamer 1.22's videoconvert makes them with its
// default settings (`videoconvert ! video/x-raw,format=RGB`), so that the engine sees the same pixels
// whether a frame came through the element or through the library API.
//
// Two steps, because submit() must return at once: copy_frame() takes the caller's planes (any
// strides) into memory the engine owns; convert_to_rgb() runs later on the engine's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::model {

struct RgbFrame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3 bytes, rows packed, R G B order
  double timestamp_s = 0.0;
};

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

// Validates, then converts. The RGB family is reordered (alpha dropped). NV12 and I420 use the
// frame's matrix and range (YuvMatrix::kAuto: GStreamer's default colorimetry for the height) with
// the chroma upsampling and fixed-point arithmetic videoconvert 1.22 uses for each (see the .cpp).
RgbFrame convert_to_rgb(const FrameView& frame);
inline RgbFrame convert_to_rgb(const OwnedFrame& frame) { return convert_to_rgb(frame.view()); }

}  // namespace qwenvl::model
