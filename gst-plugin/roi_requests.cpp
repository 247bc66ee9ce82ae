#include "roi_requests.h"

#include <algorithm>

namespace qwenvl::gst {

std::vector<std::string> parse_label_filter(const std::string& labels) {
  std::vector<std::string> out;
  gchar** parts = g_strsplit(labels.c_str(), ",", -1);
  for (gchar** p = parts; *p != nullptr; ++p) {
    gchar* name = g_strstrip(*p);
    if (*name != '\0') out.emplace_back(name);
  }
  g_strfreev(parts);
  return out;
}

std::vector<RoiBox> roi_boxes(GstBuffer* buffer, const GstVideoInfo& info, const std::vector<std::string>& labels) {
  const int frame_w = GST_VIDEO_INFO_WIDTH(&info), frame_h = GST_VIDEO_INFO_HEIGHT(&info);
  // The largest chroma subsampling of the format: corners snap to multiples of it.
  int align_x = 1, align_y = 1;
  for (guint c = 0; c < GST_VIDEO_INFO_N_COMPONENTS(&info); ++c) {
    align_x = std::max(align_x, 1 << GST_VIDEO_FORMAT_INFO_W_SUB(info.finfo, c));
    align_y = std::max(align_y, 1 << GST_VIDEO_FORMAT_INFO_H_SUB(info.finfo, c));
  }
  std::vector<RoiBox> boxes;
  gpointer state = nullptr;
  while (GstMeta* meta = gst_buffer_iterate_meta_filtered(buffer, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    const auto* roi = reinterpret_cast<const GstVideoRegionOfInterestMeta*>(meta);
    const char* type = roi->roi_type != 0 ? g_quark_to_string(roi->roi_type) : "";
    if (!labels.empty() && std::find(labels.begin(), labels.end(), type) == labels.end()) continue;
    // Clamped in 64 bits: x + w may overflow an int.
    const gint64 x0 = std::clamp<gint64>(roi->x, 0, frame_w), y0 = std::clamp<gint64>(roi->y, 0, frame_h);
    const gint64 x1 = std::clamp<gint64>(gint64{roi->x} + roi->w, 0, frame_w);
    const gint64 y1 = std::clamp<gint64>(gint64{roi->y} + roi->h, 0, frame_h);
    RoiBox box;
    box.id = roi->id;
    box.label = type;
    box.x = static_cast<int>(x0 - x0 % align_x);
    box.y = static_cast<int>(y0 - y0 % align_y);
    box.width = static_cast<int>(x1 - box.x);
    box.height = static_cast<int>(y1 - box.y);
    if (x1 <= x0 || y1 <= y0) continue;  // nothing of it inside the frame
    boxes.push_back(box);
  }
  return boxes;
}

FrameView crop_view(const FrameView& whole, const GstVideoInfo& info, const RoiBox& box) {
  FrameView view = whole;
  view.width = box.width;
  view.height = box.height;
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&info) && p < 3; ++p) {
    gint comps[GST_VIDEO_MAX_COMPONENTS];
    gst_video_format_info_component(info.finfo, p, comps);
    const int c = comps[0];
    const int row = box.y >> GST_VIDEO_FORMAT_INFO_H_SUB(info.finfo, c);
    const int col = box.x >> GST_VIDEO_FORMAT_INFO_W_SUB(info.finfo, c);
    view.planes[p] = whole.planes[p] + static_cast<ptrdiff_t>(row) * whole.strides[p] +
                     static_cast<ptrdiff_t>(col) * GST_VIDEO_FORMAT_INFO_PSTRIDE(info.finfo, c);
  }
  return view;
}

}  // namespace qwenvl::gst
