// clip-frames / clip-duration: the frames of one clip, chosen by their timestamps. A clip starts at
// a frame that is due (interval); its i-th frame is the first frame at or after
// start + i * clip-duration / (clip-frames - 1), so the clip spreads over the window whatever the
// frame rate (a slow stream stretches it). The frames are copied into buffers of our own, so that
// holding them never starves an upstream buffer pool.
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include <vector>

namespace qwenvl::gst {

class ClipCollector {
 public:
  ClipCollector() = default;
  ClipCollector(const ClipCollector&) = delete;
  ClipCollector& operator=(const ClipCollector&) = delete;
  ~ClipCollector() { reset(); }

  // Begins a clip of `frames` (>= 2) frames over `duration` at the frame at `start`.
  void start(GstClockTime start, unsigned frames, GstClockTime duration);
  bool collecting() const { return frames_ > 0; }
  // Whether the frame at `pts` is the clip's next frame.
  bool wants(GstClockTime pts) const;
  // Copies `frame` (mapped for reading, with its real strides) as the clip's next frame.
  bool add(const GstVideoFrame& frame, const GstVideoInfo& info, GstClockTime pts);
  bool complete() const { return collecting() && buffers_.size() >= frames_; }

  // The copies, in order, with their timestamps (valid until reset()).
  const std::vector<GstBuffer*>& buffers() const { return buffers_; }
  const std::vector<GstClockTime>& timestamps() const { return timestamps_; }
  const GstVideoInfo& info() const { return info_; }
  GstClockTime window_start() const { return timestamps_.empty() ? GST_CLOCK_TIME_NONE : timestamps_.front(); }
  GstClockTime window_end() const { return timestamps_.empty() ? GST_CLOCK_TIME_NONE : timestamps_.back(); }

  // Drops the frames collected so far (after submitting them, or on flush and new streams).
  void reset();

 private:
  GstClockTime target(size_t index) const;

  unsigned frames_ = 0;
  GstClockTime start_ = GST_CLOCK_TIME_NONE;
  GstClockTime duration_ = 0;
  GstVideoInfo info_{};
  std::vector<GstBuffer*> buffers_;
  std::vector<GstClockTime> timestamps_;
};

}  // namespace qwenvl::gst
