#include "preprocessing/image_processor.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "preprocessing/patchify.h"
#include "preprocessing/smart_resize.h"
#include "preprocessing/uint8_resize.h"
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

VisionInput preprocess_image(const RgbImage& image, const ProcessorConfig& config,
                             std::optional<int64_t> min_pixels, std::optional<int64_t> max_pixels) {
  at::Tensor pixels = rgb_image_tensor(image, "image");
  if (config.do_resize) {
    const auto [height, width] = image_target_size(image.height, image.width, config, min_pixels, max_pixels);
    pixels = resize_bicubic_uint8(pixels, height, width);
  }
  VisionInput result;
  result.pixel_values = patchify({pixels}, make_pixel_table(config), config, result.grid_thw);
  return result;
}

}  // namespace qwenvl::model
