// roi mode: the GstVideoRegionOfInterestMeta boxes of a frame, each cropped out of the frame as a
// FrameView of its own (no copy: the engine copies in submit()).
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include <string>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::gst {

// A box clamped to the frame; for subsampled formats (NV12, I420) its top-left corner is moved to
// even coordinates, so that the crop starts on a whole chroma sample. Width and height may be odd.
struct RoiBox {
  gint id = 0;          // the meta's id
  std::string label;    // its roi_type
  int x = 0, y = 0, width = 0, height = 0;
};

// "person, car" -> {"person", "car"}; blanks around names are ignored; empty: no filter.
std::vector<std::string> parse_label_filter(const std::string& labels);

// The boxes of `buffer` whose label is in `labels` (all when empty), in the order of their metas;
// boxes that lie outside the frame are left out.
std::vector<RoiBox> roi_boxes(GstBuffer* buffer, const GstVideoInfo& info, const std::vector<std::string>& labels);

// `whole` (a view of the mapped frame) narrowed to `box`: plane pointers moved to the box's corner,
// strides kept.
FrameView crop_view(const FrameView& whole, const GstVideoInfo& info, const RoiBox& box);

}  // namespace qwenvl::gst
