// Classifying a fault as one that loses the device (device_lost.h).
#include "runtime/device_lost.h"

#include <c10/util/Exception.h>

#include "kernels/device/sticky_error.h"

namespace qwenvl::runtime {
namespace {

std::string lost(const at::Device& device, const std::string& what) {
  return "the engine has stopped: " + device.str() + " can run nothing more after a device fault (" + what +
         "); create a new engine";
}

}  // namespace

std::optional<std::string> device_lost_reason(const std::exception& e, const at::Device& device) {
  if (dynamic_cast<const DeviceLost*>(&e) != nullptr) return std::string(e.what());
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return std::nullopt;
  if (const auto* accelerator = dynamic_cast<const c10::AcceleratorError*>(&e))
    if (kernels::is_sticky_error_code(accelerator->get_error_code()))
      return lost(device, accelerator->what_without_backtrace());
  // Our kernels report CUDA faults as kernels::Error, and a sticky error may first surface in a
  // call of its own: the device says whether it is lost.
  if (const std::optional<std::string> sticky = kernels::sticky_error(device)) return lost(device, *sticky);
  return std::nullopt;
}

}  // namespace qwenvl::runtime
