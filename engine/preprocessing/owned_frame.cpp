// validate_frame and copy_frame: the caller's frame checked and copied into engine memory.
#include "preprocessing/owned_frame.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "preprocessing/device_frame.h"
#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

std::string describe(const FrameView& frame) {
  return fmt::format("frame {}x{} {}", frame.width, frame.height, pixel_format_name(frame.format));
}

bool is_known_format(PixelFormat format) {
  const auto& all = supported_pixel_formats();
  return std::find(all.begin(), all.end(), format) != all.end();
}

}  // namespace

void validate_frame(const FrameView& frame) {
  if (!is_known_format(frame.format))
    throw Error(fmt::format("frame: unknown pixel format {}", static_cast<int>(frame.format)));
  if (frame.width <= 0 || frame.height <= 0)
    throw Error(fmt::format("{}: width and height must be positive", describe(frame)));
  // Keeps the byte count of a row far inside int (strides are int).
  constexpr int kMaxSide = 1 << 16;
  if (frame.width > kMaxSide || frame.height > kMaxSide)
    throw Error(fmt::format("{}: larger than {} pixels on a side", describe(frame), kMaxSide));
  if (frame.yuv_matrix != YuvMatrix::kAuto && frame.yuv_matrix != YuvMatrix::kBT601 &&
      frame.yuv_matrix != YuvMatrix::kBT709 && frame.yuv_matrix != YuvMatrix::kBT2020)
    throw Error(fmt::format("{}: unknown YUV matrix {}", describe(frame), static_cast<int>(frame.yuv_matrix)));
  const PlaneGeometry geometry = plane_geometry(frame.format, frame.width, frame.height);
  for (int i = 0; i < geometry.count; ++i) {
    if (frame.planes[i] == nullptr)
      throw Error(fmt::format("{}: plane {} ({}) is null", describe(frame), i, geometry.names[i]));
    if (frame.strides[i] < geometry.row_bytes[i])
      throw Error(fmt::format("{}: plane {} ({}) stride {} is smaller than its row of {} bytes", describe(frame), i,
                              geometry.names[i], frame.strides[i], geometry.row_bytes[i]));
  }
}

FrameView OwnedFrame::view() const {
  if (on_device()) return layout;
  FrameView view = layout;
  const PlaneGeometry geometry = plane_geometry(layout.format, layout.width, layout.height);
  for (int i = 0; i < 3; ++i) view.planes[i] = i < geometry.count ? bytes.data() + plane_offsets[i] : nullptr;
  return view;
}

OwnedFrame copy_frame(const FrameView& frame, const c10::Device& device) {
  validate_frame(frame);
  OwnedFrame owned;
  owned.layout = frame;
  if (frame.memory != FrameMemory::kHost) {
    validate_device_frame(frame, device);
    return owned;  // read in place on the device; keep_alive holds the caller's buffer until then
  }
  owned.layout.keep_alive.reset();
  const PlaneGeometry geometry = plane_geometry(frame.format, frame.width, frame.height);
  size_t total = 0;
  for (int i = 0; i < geometry.count; ++i) {
    owned.plane_offsets[i] = total;
    total += static_cast<size_t>(geometry.row_bytes[i] * geometry.rows[i]);
  }
  owned.bytes.resize(total);
  for (int i = 0; i < 3; ++i) {
    owned.layout.planes[i] = nullptr;
    owned.layout.strides[i] = i < geometry.count ? static_cast<int>(geometry.row_bytes[i]) : 0;
  }
  for (int i = 0; i < geometry.count; ++i) {
    const size_t row_bytes = static_cast<size_t>(geometry.row_bytes[i]);
    uint8_t* out = owned.bytes.data() + owned.plane_offsets[i];
    for (int64_t row = 0; row < geometry.rows[i]; ++row)
      std::memcpy(out + row * row_bytes, frame.planes[i] + row * frame.strides[i], row_bytes);
  }
  return owned;
}

}  // namespace qwenvl::model
