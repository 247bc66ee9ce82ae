// A clip's target size (transformers' decision, per-frame pixel cap included), then the one pixel
// path.
#include "preprocessing/video_processor.h"

#include <fmt/format.h>

#include <algorithm>

#include "preprocessing/image_processor.h"
#include "preprocessing/pixel_values.h"
#include "qwenvl/error.h"

namespace qwenvl::model {

std::pair<int64_t, int64_t> video_target_size(int64_t height, int64_t width, int64_t frames,
                                              const ProcessorConfig& config, const VideoOptions& options) {
  const int64_t factor = config.patch_size * config.merge_size;
  const int64_t min_pixels = options.min_pixels.value_or(config.min_pixels);
  int64_t max_pixels = options.max_pixels.value_or(config.max_pixels);
  if (options.cap_pixels_per_frame) {
    // Python: int(max_video_tokens * factor * factor * 0.9), then integer floor division.
    const auto total = static_cast<int64_t>(static_cast<double>(options.max_video_tokens * factor * factor) * 0.9);
    const auto floor_pixels = static_cast<int64_t>(static_cast<double>(min_pixels) * 1.05);
    max_pixels = std::max(std::min(max_pixels, total * config.temporal_patch_size / frames), floor_pixels);
  }
  // Each frame is then sized as an image with these limits.
  return image_target_size(height, width, config, min_pixels, max_pixels);
}

VisionInput preprocess_video(const std::vector<OwnedFrame>& frames, const ProcessorConfig& config,
                             const VideoOptions& options, const at::Device& device) {
  if (frames.empty()) throw Error("video: no frames");
  const int64_t height = frames[0].layout.height, width = frames[0].layout.width;
  std::vector<const OwnedFrame*> pointers;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].layout.height != height || frames[i].layout.width != width)
      throw Error(fmt::format("video frame {}: size {}x{} differs from frame 0's {}x{} (width x height); all frames "
                              "of a video must have one size",
                              i, frames[i].layout.width, frames[i].layout.height, width, height));
    pointers.push_back(&frames[i]);
  }
  const auto [h, w] = video_target_size(height, width, static_cast<int64_t>(frames.size()), config, options);
  return frames_to_pixel_values(pointers, config, h, w, device);
}

}  // namespace qwenvl::model
