// A frame as the remote engine sends it: FrameView (RGB family, NV12, I420) to packed RGB with the
// same bytes the local engine converts it to (videoconvert's arithmetic, kernels/frame_preparation_math.h),
// then a PNG (lossless) or JPEG file, then a base64 data URI for an image_url content part.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qwenvl/engine.h"
#include "qwenvl/remote_engine.h"

namespace qwenvl::remote {

// A frame's planes copied out of the caller's memory (rows packed), for encoding later on a worker.
struct OwnedFrame {
  FrameView view;  // points into bytes (moves keep the buffer; copies would not, so there are none)
  std::vector<uint8_t> bytes;

  OwnedFrame() = default;
  OwnedFrame(OwnedFrame&&) = default;
  OwnedFrame& operator=(OwnedFrame&&) = default;
  OwnedFrame(const OwnedFrame&) = delete;
  OwnedFrame& operator=(const OwnedFrame&) = delete;
};
// Throws qwenvl::Error for a frame without pixels.
OwnedFrame copy_frame(const FrameView& frame);

// Tightly packed RGB (width * 3 bytes a row). Throws qwenvl::Error for a frame without pixels.
std::vector<uint8_t> frame_to_rgb(const FrameView& frame);

// Image files of packed RGB. png_compression: zlib's level, 0-9.
std::string encode_png(const uint8_t* rgb, int width, int height, int png_compression = 1);
std::string encode_jpeg(const uint8_t* rgb, int width, int height, int quality);

std::string base64_encode(std::string_view bytes);

// "data:image/png;base64,..." or "data:image/jpeg;base64,..." of the frame.
std::string image_data_uri(const FrameView& frame, RemoteImageFormat format, int jpeg_quality);

}  // namespace qwenvl::remote
