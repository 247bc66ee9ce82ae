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

// A frame's layout in the packed buffer, its planes at `offset` plus the owned bytes' plane offsets
// and strides (a host frame's; pack_frames_on_device repacks a device frame's planes itself).
kernels::FrameLayout packed_layout(const OwnedFrame& f, int64_t offset) {
  kernels::FrameLayout layout;
  layout.format = f.layout.format;
  layout.width = f.layout.width;
  layout.height = f.layout.height;
  layout.yuv_matrix = f.layout.yuv_matrix;
  layout.yuv_full_range = f.layout.yuv_full_range;
  const int planes = plane_geometry(f.layout.format, f.layout.width, f.layout.height).count;
  for (int p = 0; p < planes; ++p) {
    layout.plane_offsets[p] = offset + static_cast<int64_t>(f.plane_offsets[p]);
    layout.strides[p] = f.layout.strides[p];
  }
  return layout;
}

// Bytes of a frame once its rows are packed (host frames: their owned bytes).
int64_t packed_size(const OwnedFrame& f) {
  if (!f.on_device()) return static_cast<int64_t>(f.bytes.size());
  const PlaneGeometry geometry = plane_geometry(f.layout.format, f.layout.width, f.layout.height);
  int64_t total = 0;
  for (int p = 0; p < geometry.count; ++p) total += geometry.row_bytes[p] * geometry.rows[p];
  return total;
}

// Frames of which some lie in CUDA memory (on `device`, as copy_frame checked): one device buffer,
// host frames sent in from pinned memory, device frames copied in row by row on the device (a
// device-to-device copy, queued on the current stream like the kernels after it), every plane's
// rows packed as in an OwnedFrame's bytes. The conversion then reads the same bytes as for host
// frames.
PackedFrames pack_frames_on_device(const std::vector<const OwnedFrame*>& frames, const at::Device& device) {
  if (!device.is_cuda()) throw Error("a frame in CUDA memory cannot be prepared on " + device.str());
  int64_t total = 0;
  for (const OwnedFrame* f : frames) total += packed_size(*f);
  PackedFrames packed;
  packed.bytes = at::empty({total}, at::TensorOptions().dtype(at::kByte).device(device));
  int64_t offset = 0;
  for (const OwnedFrame* f : frames) {
    kernels::FrameLayout layout = packed_layout(*f, offset);
    if (f->on_device()) {
      const PlaneGeometry geometry = plane_geometry(f->layout.format, f->layout.width, f->layout.height);
      int64_t plane_offset = offset;
      for (int p = 0; p < geometry.count; ++p) {
        const int64_t rows = geometry.rows[p], row_bytes = geometry.row_bytes[p];
        const at::Tensor source = at::from_blob(const_cast<uint8_t*>(f->layout.planes[p]), {rows, row_bytes},
                                                {static_cast<int64_t>(f->layout.strides[p]), 1},
                                                at::TensorOptions().dtype(at::kByte).device(device));
        packed.bytes.narrow(0, plane_offset, rows * row_bytes).view({rows, row_bytes}).copy_(source, /*non_blocking=*/true);
        layout.plane_offsets[p] = plane_offset;
        layout.strides[p] = row_bytes;
        plane_offset += rows * row_bytes;
      }
    } else {
      at::Tensor host = staging(static_cast<int64_t>(f->bytes.size()), at::kByte, device);
      std::memcpy(host.data_ptr<uint8_t>(), f->bytes.data(), f->bytes.size());
      packed.bytes.narrow(0, offset, host.numel()).copy_(host, /*non_blocking=*/true);
    }
    packed.layouts.push_back(layout);
    offset += packed_size(*f);
  }
  return packed;
}

}  // namespace

PackedFrames pack_frames(const std::vector<const OwnedFrame*>& frames, const at::Device& device) {
  for (const OwnedFrame* f : frames)
    if (f->on_device()) return pack_frames_on_device(frames, device);
  int64_t total = 0;
  for (const OwnedFrame* f : frames) total += static_cast<int64_t>(f->bytes.size());
  at::Tensor host = staging(total, at::kByte, device);
  PackedFrames packed;
  int64_t offset = 0;
  for (const OwnedFrame* f : frames) {
    std::memcpy(host.data_ptr<uint8_t>() + offset, f->bytes.data(), f->bytes.size());
    packed.layouts.push_back(packed_layout(*f, offset));
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
