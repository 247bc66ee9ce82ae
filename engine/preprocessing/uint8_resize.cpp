#include "preprocessing/uint8_resize.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "qwenvl/error.h"

namespace qwenvl::model {

at::Tensor rgb_image_tensor(const RgbImage& image, const std::string& what) {
  if (image.data == nullptr) throw Error(fmt::format("{}: no pixel data (null pointer)", what));
  if (image.width <= 0 || image.height <= 0)
    throw Error(fmt::format("{}: empty image ({}x{}, width x height)", what, image.width, image.height));
  if (image.row_stride < 3 * image.width)
    throw Error(fmt::format("{}: row stride {} bytes is shorter than a row of {} RGB pixels ({} bytes)", what,
                            image.row_stride, image.width, 3 * image.width));
  // from_blob never writes; the const_cast only satisfies its signature.
  auto hwc = at::from_blob(const_cast<uint8_t*>(image.data), {1, image.height, image.width, 3},
                           {image.height * image.row_stride, image.row_stride, 3, 1},
                           at::TensorOptions().dtype(at::kByte));
  return hwc.permute({0, 3, 1, 2});
}

at::Tensor resize_bicubic_uint8(const at::Tensor& images, int64_t height, int64_t width) {
  if (images.scalar_type() != at::kByte || images.dim() != 4 || !images.device().is_cpu())
    throw Error("resize_bicubic_uint8: expects a [N, C, H, W] uint8 CPU tensor");
  if (images.size(2) == height && images.size(3) == width) return images;
  // torch.nn.functional.interpolate(mode="bicubic", antialias=True, align_corners=False) with an
  // explicit size calls this overload with no scale factors.
  const std::array<int64_t, 2> size{height, width};
  return at::_upsample_bicubic2d_aa(images, at::OptionalIntArrayRef(size), /*align_corners=*/false, std::nullopt);
}

}  // namespace qwenvl::model
