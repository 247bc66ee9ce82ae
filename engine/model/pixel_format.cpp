// The pixel formats of qwenvl/engine.h: plane layouts (their names are inline in engine.h).
#include "model/pixel_format.h"

namespace qwenvl {

FrameView FrameView::packed(PixelFormat format, int width, int height, const uint8_t* data, double timestamp_s) {
  FrameView view;
  view.format = format;
  view.width = width;
  view.height = height;
  view.timestamp_s = timestamp_s;
  const model::PlaneGeometry geometry = model::plane_geometry(format, width, height);
  const uint8_t* plane = data;
  for (int i = 0; i < geometry.count; ++i) {
    view.planes[i] = plane;
    view.strides[i] = static_cast<int>(geometry.row_bytes[i]);
    if (plane != nullptr && geometry.row_bytes[i] > 0 && geometry.rows[i] > 0)
      plane += geometry.row_bytes[i] * geometry.rows[i];
  }
  return view;
}

namespace model {

bool is_yuv(PixelFormat format) { return format == PixelFormat::kNV12 || format == PixelFormat::kI420; }

int rgb_bytes_per_pixel(PixelFormat format) {
  switch (format) {
    case PixelFormat::kRGB:
    case PixelFormat::kBGR:
      return 3;
    case PixelFormat::kRGBA:
    case PixelFormat::kRGBx:
    case PixelFormat::kBGRA:
    case PixelFormat::kBGRx:
      return 4;
    default:
      return 0;
  }
}

PlaneGeometry plane_geometry(PixelFormat format, int width, int height) {
  PlaneGeometry geometry;
  const int64_t w = width, h = height;
  const int64_t chroma_w = (w + 1) / 2, chroma_h = (h + 1) / 2;
  switch (format) {
    case PixelFormat::kNV12:
      geometry.count = 2;
      geometry.row_bytes[0] = w, geometry.rows[0] = h, geometry.names[0] = "Y";
      geometry.row_bytes[1] = 2 * chroma_w, geometry.rows[1] = chroma_h, geometry.names[1] = "UV";
      break;
    case PixelFormat::kI420:
      geometry.count = 3;
      geometry.row_bytes[0] = w, geometry.rows[0] = h, geometry.names[0] = "Y";
      geometry.row_bytes[1] = chroma_w, geometry.rows[1] = chroma_h, geometry.names[1] = "U";
      geometry.row_bytes[2] = chroma_w, geometry.rows[2] = chroma_h, geometry.names[2] = "V";
      break;
    default: {
      const int bpp = rgb_bytes_per_pixel(format);
      if (bpp == 0) return geometry;  // not a format of the enum
      geometry.count = 1;
      geometry.row_bytes[0] = bpp * w, geometry.rows[0] = h, geometry.names[0] = "packed";
    }
  }
  return geometry;
}

}  // namespace model
}  // namespace qwenvl
