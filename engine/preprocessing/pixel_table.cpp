// make_pixel_table: every uint8 level through the reference's own rescale and normalize ops.
#include "preprocessing/pixel_table.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstring>

#include "qwenvl/error.h"

namespace qwenvl::model {

namespace {

at::Tensor float3(const std::vector<double>& values) {
  at::Tensor t = at::empty({3}, at::kFloat);
  // torch.tensor([python floats]) rounds each double to the nearest float32.
  for (int64_t i = 0; i < 3; ++i) t.data_ptr<float>()[i] = static_cast<float>(values[i]);
  return t.view({-1, 1, 1});
}

}  // namespace

PixelTable make_pixel_table(const ProcessorConfig& config) {
  if (config.image_mean.size() != 3 || config.image_std.size() != 3)
    throw Error(fmt::format("processor config: image_mean and image_std need 3 values (RGB), got {} and {}",
                            config.image_mean.size(), config.image_std.size()));
  for (double s : config.image_std)
    if (s == 0.0) throw Error("processor config: image_std has a zero entry (division by zero)");
  if (config.do_rescale && config.rescale_factor == 0.0)
    throw Error("processor config: rescale_factor is 0");

  // Every uint8 level once per channel, shaped like an image [C, 1, 256].
  const at::Tensor levels = at::arange(256, at::kByte).view({1, 1, 256}).expand({3, 1, 256}).contiguous();
  at::Tensor out;
  // The branches mirror TorchvisionBackend.rescale_and_normalize and torchvision normalize_image.
  if (config.do_rescale && config.do_normalize) {
    const at::Tensor mean = float3(config.image_mean).mul(1.0 / config.rescale_factor);
    const at::Tensor std = float3(config.image_std).mul(1.0 / config.rescale_factor);
    out = levels.to(at::kFloat).sub(mean).div_(std);
  } else if (config.do_normalize) {
    out = levels.to(at::kFloat).sub(float3(config.image_mean)).div_(float3(config.image_std));
  } else if (config.do_rescale) {
    out = levels.mul(config.rescale_factor);  // uint8 * python float -> float32, as `image * scale`
  } else {
    out = levels.to(at::kFloat);  // transformers would keep uint8; the values are the same
  }
  out = out.to(at::kFloat).contiguous();
  PixelTable table;
  std::memcpy(table.values.data(), out.data_ptr<float>(), sizeof(float) * table.values.size());
  return table;
}

}  // namespace qwenvl::model
