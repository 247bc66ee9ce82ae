#include "clip_collector.h"

namespace qwenvl::gst {

void ClipCollector::start(GstClockTime start, unsigned frames, GstClockTime duration) {
  reset();
  frames_ = frames;
  start_ = start;
  duration_ = duration;
}

GstClockTime ClipCollector::target(size_t index) const {
  if (frames_ < 2 || index == 0) return start_;
  return start_ + gst_util_uint64_scale(duration_, index, frames_ - 1);
}

bool ClipCollector::wants(GstClockTime pts) const {
  if (!collecting() || complete()) return false;
  if (buffers_.empty()) return true;
  // Without timestamps, frames are taken one after another.
  if (!GST_CLOCK_TIME_IS_VALID(pts) || !GST_CLOCK_TIME_IS_VALID(start_)) return true;
  return pts >= target(buffers_.size()) && pts > timestamps_.back();
}

bool ClipCollector::add(const GstVideoFrame& frame, const GstVideoInfo& info, GstClockTime pts) {
  if (buffers_.empty()) info_ = info;
  GstBuffer* copy = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info_), nullptr);
  GstVideoFrame dst;
  if (copy == nullptr || !gst_video_frame_map(&dst, &info_, copy, GST_MAP_WRITE)) {
    if (copy != nullptr) gst_buffer_unref(copy);
    return false;
  }
  const gboolean copied = gst_video_frame_copy(&dst, &frame);
  gst_video_frame_unmap(&dst);
  if (!copied) {
    gst_buffer_unref(copy);
    return false;
  }
  buffers_.push_back(copy);
  timestamps_.push_back(pts);
  return true;
}

void ClipCollector::reset() {
  for (GstBuffer* b : buffers_) gst_buffer_unref(b);
  buffers_.clear();
  timestamps_.clear();
  frames_ = 0;
  start_ = GST_CLOCK_TIME_NONE;
}

}  // namespace qwenvl::gst
