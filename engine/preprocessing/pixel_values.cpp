// pack_frames and frames_to_pixel_values: the frames and the pixel table staged for the device,
// then kernels::prepare_frames.
#include "preprocessing/pixel_values.h"

#include <cstring>

#include "kernels/error.h"
#include "preprocessing/pixel_table.h"
#include "qwenvl/error.h"

namespace qwenvl::model {

namespace {

// Host memory the device copies from asynchronously: pinned for a CUDA device.
at::Tensor staging(int64_t elements, at::ScalarType type, const at::Device& device) {
  return at::empty({elements}, at::TensorOptions().dtype(type).pinned_memory(device.is_cuda()));
}

at::Tensor to_device(const at::Tensor& host, const at::Device& device) {
  return device.is_cuda() ? host.to(device, /*non_blocking=*/true) : host;
}

}  // namespace

PackedFrames pack_frames(const std::vector<const OwnedFrame*>& frames, const at::Device& device) {
  int64_t total = 0;
  for (const OwnedFrame* f : frames) total += static_cast<int64_t>(f->bytes.size());
  at::Tensor host = staging(total, at::kByte, device);
  PackedFrames packed;
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
    packed.layouts.push_back(layout);
    offset += static_cast<int64_t>(f->bytes.size());
  }
  packed.bytes = to_device(host, device);
  return packed;
}

VisionInput frames_to_pixel_values(const std::vector<const OwnedFrame*>& frames, const ProcessorConfig& config,
                                   int64_t height, int64_t width, const at::Device& device) {
  // The pixel table first: its config errors come before anything is queued.
  const PixelTable table = make_pixel_table(config);
  const PackedFrames packed = pack_frames(frames, device);
  at::Tensor levels = staging(3 * 256, at::kFloat, device);
  std::memcpy(levels.data_ptr<float>(), table.values.data(), sizeof(float) * table.values.size());
  levels = to_device(levels, device).view({3, 256});

  const kernels::PatchShape shape{config.patch_size, config.temporal_patch_size, config.merge_size};
  VisionInput result;
  try {
    result.pixel_values = kernels::prepare_frames(packed.bytes, packed.layouts, height, width, levels, shape);
  } catch (const kernels::Error& e) {
    throw Error(e.what());  // the kernels' own error, as the engine's
  }
  const int64_t n = static_cast<int64_t>(frames.size());
  result.grid_thw = {(n + shape.temporal_patch_size - 1) / shape.temporal_patch_size, height / shape.patch_size,
                     width / shape.patch_size};
  return result;
}

}  // namespace qwenvl::model
