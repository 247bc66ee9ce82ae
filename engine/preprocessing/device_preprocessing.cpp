#include "preprocessing/device_preprocessing.h"

#include <fmt/format.h>

#include <cstring>

#include "kernels/error.h"
#include "kernels/frame_preparation.h"
#include "preprocessing/image_processor.h"
#include "preprocessing/patchify.h"
#include "qwenvl/error.h"

namespace qwenvl::model {

namespace {

// Host memory the device copies from asynchronously: pinned for a CUDA device.
at::Tensor staging(int64_t elements, at::ScalarType type, const at::Device& device) {
  return at::empty({elements}, at::TensorOptions().dtype(type).pinned_memory(device.is_cuda()));
}

VisionInput prepare(const std::vector<const OwnedFrame*>& frames, const ProcessorConfig& config, int64_t height,
                    int64_t width, const at::Device& device) {
  // The pixel table first: its config errors are the CPU path's, and nothing is queued yet.
  const PixelTable table = make_pixel_table(config);

  // Every frame's planes (rows already packed by copy_frame) in one buffer, one copy to the device.
  int64_t total = 0;
  for (const OwnedFrame* f : frames) total += static_cast<int64_t>(f->bytes.size());
  at::Tensor host = staging(total, at::kByte, device);
  std::vector<kernels::FrameLayout> layouts;
  int64_t offset = 0;
  for (const OwnedFrame* f : frames) {
    std::memcpy(host.data_ptr<uint8_t>() + offset, f->bytes.data(), f->bytes.size());
    kernels::FrameLayout layout;
    layout.format = f->layout.format;
    layout.width = f->layout.width;
    layout.height = f->layout.height;
    const int planes = plane_geometry(f->layout.format, f->layout.width, f->layout.height).count;
    for (int p = 0; p < planes; ++p) {
      layout.plane_offsets[p] = offset + static_cast<int64_t>(f->plane_offsets[p]);
      layout.strides[p] = f->layout.strides[p];
    }
    layout.yuv_matrix = f->layout.yuv_matrix;
    layout.yuv_full_range = f->layout.yuv_full_range;
    layouts.push_back(layout);
    offset += static_cast<int64_t>(f->bytes.size());
  }
  at::Tensor levels = staging(3 * 256, at::kFloat, device);
  std::memcpy(levels.data_ptr<float>(), table.values.data(), sizeof(float) * table.values.size());
  const at::Tensor bytes = device.is_cuda() ? host.to(device, /*non_blocking=*/true) : host;
  levels = (device.is_cuda() ? levels.to(device, /*non_blocking=*/true) : levels).view({3, 256});

  const kernels::PatchShape shape{config.patch_size, config.temporal_patch_size, config.merge_size};
  VisionInput result;
  try {
    result.pixel_values = kernels::prepare_frames(bytes, layouts, height, width, levels, shape);
  } catch (const kernels::Error& e) {
    throw Error(e.what());  // the kernels' own error, as the engine's
  }
  const int64_t n = static_cast<int64_t>(frames.size());
  result.grid_thw = {(n + shape.temporal_patch_size - 1) / shape.temporal_patch_size, height / shape.patch_size,
                     width / shape.patch_size};
  return result;
}

}  // namespace

VisionInput preprocess_image_on_device(const OwnedFrame& frame, const ProcessorConfig& config,
                                       std::optional<int64_t> min_pixels, std::optional<int64_t> max_pixels,
                                       const at::Device& device) {
  const auto [height, width] =
      image_target_size(frame.layout.height, frame.layout.width, config, min_pixels, max_pixels);
  return prepare({&frame}, config, height, width, device);
}

VisionInput preprocess_video_on_device(const std::vector<OwnedFrame>& frames, const ProcessorConfig& config,
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
  return prepare(pointers, config, h, w, device);
}

}  // namespace qwenvl::model
