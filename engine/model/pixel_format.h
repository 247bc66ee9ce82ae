// Memory layout of the pixel formats of qwenvl/engine.h: how many planes a frame has and how many
// bytes and rows each holds. One place, so that FrameView::packed, the copy step and the converter
// agree.
#pragma once

#include <cstdint>

#include "qwenvl/engine.h"

namespace qwenvl::model {

struct PlaneGeometry {
  int count = 0;                   // planes in use
  int64_t row_bytes[3] = {0, 0, 0};  // bytes of pixel data in one row (a stride may be larger)
  int64_t rows[3] = {0, 0, 0};
  const char* names[3] = {"", "", ""};  // for error messages: "Y", "UV", ...
};

bool is_yuv(PixelFormat format);
// Bytes per pixel of the RGB family (3 or 4); 0 for YUV formats.
int rgb_bytes_per_pixel(PixelFormat format);
// Planes of a width x height frame; chroma planes of 4:2:0 formats are ceil(w/2) x ceil(h/2).
PlaneGeometry plane_geometry(PixelFormat format, int width, int height);

}  // namespace qwenvl::model
