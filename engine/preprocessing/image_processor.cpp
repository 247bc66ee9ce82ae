// An image's target size (transformers' decision), then the one pixel path.
#include "preprocessing/image_processor.h"

#include <fmt/format.h>

#include "preprocessing/pixel_values.h"
#include "preprocessing/smart_resize.h"
#include "qwenvl/error.h"

namespace qwenvl::model {

namespace {

constexpr int kBicubic = 3;  // PIL.Image.BICUBIC, the only resample Qwen2-VL configs use

}  // namespace

std::pair<int64_t, int64_t> image_target_size(int64_t height, int64_t width, const ProcessorConfig& config,
                                              std::optional<int64_t> min_pixels, std::optional<int64_t> max_pixels) {
  if (!config.do_resize) return {height, width};
  if (config.resample != kBicubic)
    throw Error(fmt::format("processor config: resample {} is not supported (only 3, bicubic)", config.resample));
  return smart_resize(height, width, config.patch_size * config.merge_size, min_pixels.value_or(config.min_pixels),
                      max_pixels.value_or(config.max_pixels));
}

VisionInput preprocess_image(const OwnedFrame& frame, const ProcessorConfig& config, std::optional<int64_t> min_pixels,
                             std::optional<int64_t> max_pixels, const at::Device& device) {
  const auto [height, width] =
      image_target_size(frame.layout.height, frame.layout.width, config, min_pixels, max_pixels);
  return frames_to_pixel_values({&frame}, config, height, width, device);
}

}  // namespace qwenvl::model
