// The pixel formats and YUV matrices of frames: plain types shared by the engine's public API and
// the kernels that convert frames (a leaf header: it includes nothing of either).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace qwenvl {

// The pixel formats frames may come in; converted to RGB as GStreamer's videoconvert does.
enum class PixelFormat { kRGB, kRGBA, kRGBx, kBGR, kBGRA, kBGRx, kNV12, kI420 };

// Every supported format with its GStreamer / caps name (case matters: "RGBx", not "RGBX"), in the
// order of the enum. Inline, so that clients which load the engine library at run time (the
// GStreamer element builds its caps from this table) need none of its symbols for it.
struct PixelFormatName {
  PixelFormat format;
  const char* name;
};
inline constexpr PixelFormatName kPixelFormatNames[] = {
    {PixelFormat::kRGB, "RGB"},   {PixelFormat::kRGBA, "RGBA"}, {PixelFormat::kRGBx, "RGBx"},
    {PixelFormat::kBGR, "BGR"},   {PixelFormat::kBGRA, "BGRA"}, {PixelFormat::kBGRx, "BGRx"},
    {PixelFormat::kNV12, "NV12"}, {PixelFormat::kI420, "I420"},
};

// Every supported format, in the order above; the element's caps are built from this list.
inline const std::vector<PixelFormat>& supported_pixel_formats() {
  static const std::vector<PixelFormat> formats = [] {
    std::vector<PixelFormat> all;
    for (const PixelFormatName& entry : kPixelFormatNames) all.push_back(entry.format);
    return all;
  }();
  return formats;
}
// The GStreamer / caps name ("RGB", "BGRx", "NV12", ...), and back (nullopt for an unknown name).
constexpr const char* pixel_format_name(PixelFormat format) {
  for (const PixelFormatName& entry : kPixelFormatNames)
    if (entry.format == format) return entry.name;
  return "unknown";
}
constexpr std::optional<PixelFormat> pixel_format_from_name(std::string_view name) {
  for (const PixelFormatName& entry : kPixelFormatNames)
    if (name == entry.name) return entry.format;
  return std::nullopt;
}

// YUV to RGB matrix of NV12 / I420 frames. kAuto is what GStreamer 1.22 assumes for caps without
// colorimetry (set_default_colorimetry in video-info.c, used by gst_video_info_set_format and
// gst_video_info_from_caps): height > 576 -> BT.709 with chroma-site mpeg2 (H-cosited), otherwise
// BT.601 with chroma-site none; the width plays no part. Explicit matrices act as caps with that
// colorimetry and no chroma-site field.
enum class YuvMatrix { kAuto, kBT601, kBT709, kBT2020 };

}  // namespace qwenvl
