#include "preprocessing/device_frame.h"

#include <fmt/format.h>

#include <string>

#include "kernels/device/device_span.h"
#include "qwenvl/error.h"

namespace qwenvl::model {

void validate_device_frame(const FrameView& frame, const c10::Device& device) {
  const std::string what = fmt::format("frame {}x{} {} in CUDA memory", frame.width, frame.height,
                                       pixel_format_name(frame.format));
  if (frame.memory != FrameMemory::kCuda)
    throw Error(fmt::format("frame: unknown memory kind {}", static_cast<int>(frame.memory)));
  if (frame.cuda_device < 0)
    throw Error(fmt::format("{}: cuda_device {} is not a device index", what, frame.cuda_device));
  if (!device.is_cuda())
    throw Error(fmt::format("{} on cuda:{}: this engine prepares frames on {}, which cannot read CUDA memory; run "
                            "it on cuda:{} or send the frame in host memory",
                            what, frame.cuda_device, device.str(), frame.cuda_device));
  if (frame.cuda_device != device.index())
    throw Error(fmt::format("{} on cuda:{}: this engine prepares frames on {}; send frames of that device (or host "
                            "memory)",
                            what, frame.cuda_device, device.str()));
  const PlaneGeometry geometry = plane_geometry(frame.format, frame.width, frame.height);
  for (int i = 0; i < geometry.count; ++i) {
    // The plane's last row ends row_bytes after its start: the stride past it is not read.
    const int64_t span = static_cast<int64_t>(frame.strides[i]) * (geometry.rows[i] - 1) + geometry.row_bytes[i];
    const std::string fault = kernels::check_device_span(frame.planes[i], span, device);
    if (!fault.empty()) throw Error(fmt::format("{}: plane {} ({}): {}", what, i, geometry.names[i], fault));
  }
}

}  // namespace qwenvl::model
