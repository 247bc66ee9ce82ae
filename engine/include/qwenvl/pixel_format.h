// The pixel formats and YUV matrices of frames: plain types shared by the engine's public API and
// the kernels that convert frames (a leaf header: it includes nothing of either).
#pragma once

#include <cstdint>
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

// Memory layout of a width x height frame: how many planes and how many bytes and rows each holds
// (chroma planes of 4:2:0 formats are ceil(w/2) x ceil(h/2) samples). One place, so that
// FrameView::packed, the engine's copy step and the kernels agree.
struct PlaneGeometry {
  int count = 0;                        // planes in use; 0 for a value outside the enum
  int64_t row_bytes[3] = {0, 0, 0};     // bytes of pixel data in one row (a stride may be larger)
  int64_t rows[3] = {0, 0, 0};
  const char* names[3] = {"", "", ""};  // for error messages: "Y", "UV", ...
};

constexpr bool is_yuv(PixelFormat format) { return format == PixelFormat::kNV12 || format == PixelFormat::kI420; }

// Bytes per pixel of the RGB family (3 or 4); 0 for YUV formats.
constexpr int rgb_bytes_per_pixel(PixelFormat format) {
  switch (format) {
    case PixelFormat::kRGB:
    case PixelFormat::kBGR: return 3;
    case PixelFormat::kRGBA:
    case PixelFormat::kRGBx:
    case PixelFormat::kBGRA:
    case PixelFormat::kBGRx: return 4;
    default: return 0;
  }
}

constexpr PlaneGeometry plane_geometry(PixelFormat format, int64_t width, int64_t height) {
  PlaneGeometry g;
  const int64_t chroma_w = (width + 1) / 2, chroma_h = (height + 1) / 2;
  switch (format) {
    case PixelFormat::kNV12:
      g.count = 2;
      g.row_bytes[0] = width, g.rows[0] = height, g.names[0] = "Y";
      g.row_bytes[1] = 2 * chroma_w, g.rows[1] = chroma_h, g.names[1] = "UV";
      return g;
    case PixelFormat::kI420:
      g.count = 3;
      g.row_bytes[0] = width, g.rows[0] = height, g.names[0] = "Y";
      g.row_bytes[1] = chroma_w, g.rows[1] = chroma_h, g.names[1] = "U";
      g.row_bytes[2] = chroma_w, g.rows[2] = chroma_h, g.names[2] = "V";
      return g;
    default:
      if (rgb_bytes_per_pixel(format) == 0) return g;
      g.count = 1;
      g.row_bytes[0] = rgb_bytes_per_pixel(format) * width, g.rows[0] = height, g.names[0] = "packed";
      return g;
  }
}

}  // namespace qwenvl
