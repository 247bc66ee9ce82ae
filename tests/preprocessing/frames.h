// Frames for the preprocessing tests, built and read as the engine does: RGB bytes copied into an
// OwnedFrame, and a frame's RGB pixels from kernels::frames_to_rgb on the CPU (the conversion that
// preprocess_image and preprocess_video run).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/frame_preparation.h"
#include "preprocessing/owned_frame.h"
#include "preprocessing/pixel_values.h"
#include "qwenvl/engine.h"

namespace qwenvl::test {

// An RGB frame of w x h pixels, `stride` bytes from one row to the next, as the engine owns it.
// Throws qwenvl::Error as copy_frame does.
inline model::OwnedFrame owned_rgb_frame(const uint8_t* data, int w, int h, int stride) {
  FrameView view = FrameView::packed(PixelFormat::kRGB, w, h, data);
  view.strides[0] = stride;
  return model::copy_frame(view);
}

// The frame's pixels as uint8 [height, width, 3] RGB, through copy_frame as the engine takes it.
inline at::Tensor frame_rgb(const FrameView& frame) {
  const model::OwnedFrame owned = model::copy_frame(frame);
  const model::PackedFrames packed = model::pack_frames({&owned}, at::kCPU);
  return kernels::frames_to_rgb(packed.bytes, packed.layouts)[0];
}

}  // namespace qwenvl::test
