// change-threshold: how much a frame differs from another, measured on small luma thumbnails. A
// frame becomes a grid of at most kLumaGrid x kLumaGrid cells, each the mean 8-bit luma of the
// pixels that fall in it (area average); two thumbnails of the same grid differ by the mean absolute
// difference of their cells (0-255). Luma: the Y plane of NV12/I420 as it is; R, G, B of the packed
// formats weighted as BT.601 (0.299, 0.587, 0.114), alpha ignored. Knows nothing of GStreamer.
#pragma once

#include <optional>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::gst {

// Cells per side at most: coarse enough to average sensor noise away, fine enough that a change in
// one part of the picture still counts (a change over a fraction f of the picture, d luma levels
// deep, scores about f * d).
constexpr int kLumaGrid = 32;

struct LumaThumbnail {
  int width = 0, height = 0;  // min(frame width, kLumaGrid) x min(frame height, kLumaGrid); 0: none
  std::vector<float> cells;   // row-major mean luma, 0-255

  bool empty() const { return cells.empty(); }
};

// The thumbnail of `frame` (planes and strides as a FrameView gives them); empty for a frame with
// no pixels or a format outside PixelFormat.
LumaThumbnail luma_thumbnail(const FrameView& frame);

// The mean absolute difference of the cells of `a` and `b` (0-255); nullopt when they cannot be
// compared (either empty, or different grids: frames of other sizes).
std::optional<double> mean_abs_difference(const LumaThumbnail& a, const LumaThumbnail& b);

// Whether `now` differs from `reference` by more than `threshold`: true when they cannot be
// compared (no reference yet, or the size changed), so that such a frame is asked.
bool differs_by_more_than(const LumaThumbnail& now, const LumaThumbnail& reference, double threshold);

}  // namespace qwenvl::gst
