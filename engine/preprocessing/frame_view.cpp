// FrameView::packed of qwenvl/engine.h: the plane pointers and strides of a tightly packed frame.
#include "qwenvl/engine.h"

namespace qwenvl {

FrameView FrameView::packed(PixelFormat format, int width, int height, const uint8_t* data, double timestamp_s) {
  FrameView view;
  view.format = format;
  view.width = width;
  view.height = height;
  view.timestamp_s = timestamp_s;
  const PlaneGeometry geometry = plane_geometry(format, width, height);
  const uint8_t* plane = data;
  for (int i = 0; i < geometry.count; ++i) {
    view.planes[i] = plane;
    view.strides[i] = static_cast<int>(geometry.row_bytes[i]);
    if (plane != nullptr && geometry.row_bytes[i] > 0 && geometry.rows[i] > 0)
      plane += geometry.row_bytes[i] * geometry.rows[i];
  }
  return view;
}

}  // namespace qwenvl
