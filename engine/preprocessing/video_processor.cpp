#include "preprocessing/video_processor.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "preprocessing/patchify.h"
#include "preprocessing/smart_resize.h"
#include "preprocessing/uint8_resize.h"
#include "qwenvl/error.h"

namespace qwenvl::model {

namespace {

constexpr int kBicubic = 3;  // PIL.Image.BICUBIC

}  // namespace

std::pair<int64_t, int64_t> video_target_size(int64_t height, int64_t width, int64_t frames,
                                              const ProcessorConfig& config, const VideoOptions& options) {
  if (!config.do_resize) return {height, width};
  if (config.resample != kBicubic)
    throw Error(fmt::format("processor config: resample {} is not supported (only 3, bicubic)", config.resample));
  const int64_t factor = config.patch_size * config.merge_size;
  const int64_t min_pixels = options.min_pixels.value_or(config.min_pixels);
  int64_t max_pixels = options.max_pixels.value_or(config.max_pixels);
  if (options.cap_pixels_per_frame) {
    // Python: int(max_video_tokens * factor * factor * 0.9), then integer floor division.
    const auto total = static_cast<int64_t>(static_cast<double>(options.max_video_tokens * factor * factor) * 0.9);
    const auto floor_pixels = static_cast<int64_t>(static_cast<double>(min_pixels) * 1.05);
    max_pixels = std::max(std::min(max_pixels, total * config.temporal_patch_size / frames), floor_pixels);
  }
  return smart_resize(height, width, factor, min_pixels, max_pixels);
}

VisionInput preprocess_video(const std::vector<RgbImage>& frames, const ProcessorConfig& config,
                             const VideoOptions& options) {
  if (frames.empty()) throw Error("video: no frames");
  const int64_t height = frames[0].height, width = frames[0].width;
  std::vector<at::Tensor> pixels;
  pixels.reserve(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const std::string what = fmt::format("video frame {}", i);
    pixels.push_back(rgb_image_tensor(frames[i], what));
    if (frames[i].height != height || frames[i].width != width)
      throw Error(fmt::format("{}: size {}x{} differs from frame 0's {}x{} (width x height); all frames of a video "
                              "must have one size",
                              what, frames[i].width, frames[i].height, width, height));
  }

  if (config.do_resize) {
    const auto [h, w] = video_target_size(height, width, static_cast<int64_t>(frames.size()), config, options);
    // The kernel treats every image of a batch alone, so frame by frame gives the batch's bytes.
    for (at::Tensor& p : pixels) p = resize_bicubic_uint8(p, h, w);
  }
  VisionInput result;
  result.pixel_values = patchify(pixels, make_pixel_table(config), config, result.grid_thw);
  return result;
}

}  // namespace qwenvl::model
