// Draws a caption onto a video frame in place (the qwenvl element's overlay=true): the text,
// wrapped to the frame's width, in white on a dark band across the bottom of the frame, readable on
// any background. OpenCV draws; no GStreamer here: the caller passes plane pointers and strides.
#pragma once

#include <string>
#include <vector>

#include "qwenvl/engine.h"  // PixelFormat: the element's formats, one list

namespace qwenvl::gst {

// A frame in the caller's writable memory, in one of the element's pixel formats.
struct OverlayFrame {
  PixelFormat format = PixelFormat::kRGB;
  int width = 0;
  int height = 0;
  uint8_t* planes[3] = {nullptr, nullptr, nullptr};  // RGB family: 1; NV12: Y, UV; I420: Y, U, V
  int strides[3] = {0, 0, 0};
  bool yuv_full_range = false;  // NV12/I420: luma 0-255 rather than 16-235
};

// Where the caption goes, in pixels: full-width rows [y, y + height) at the bottom of the frame.
struct CaptionBox {
  int x = 0, y = 0, width = 0, height = 0;
  bool empty() const { return width <= 0 || height <= 0; }
};

// The text as the Hershey fonts can draw it: printable ASCII, line breaks kept. Common Unicode
// punctuation becomes its ASCII look-alike (curly quotes, dashes, ellipsis, non-breaking spaces),
// Latin letters with accents lose them (é -> e), every other character becomes '?', and bytes that
// are not UTF-8 become '?' too.
std::string caption_ascii(const std::string& utf8);

// The lines the caption is drawn as for a frame of this size: words wrapped to the width (a word
// longer than a line is cut), at most about half the frame's height of lines (the last one ends
// with "..." when text was left out).
std::vector<std::string> caption_lines(const std::string& utf8, int width, int height);

// The box caption_lines() would fill; empty when the text is empty (nothing is drawn). For NV12 and
// I420 its top is even, so that it covers whole chroma samples.
CaptionBox caption_box(const std::string& utf8, PixelFormat format, int width, int height);

// Draws the caption: inside the box, the picture is darkened to a third (alpha, where the format
// has it, made opaque; YUV chroma made neutral so the band is a dark grey version of the picture)
// and the text is drawn in white. Nothing outside the box changes, row padding included. Returns
// the box.
CaptionBox draw_caption(const OverlayFrame& frame, const std::string& utf8);

}  // namespace qwenvl::gst
