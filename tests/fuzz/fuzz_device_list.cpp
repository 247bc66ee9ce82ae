// libFuzzer harness: the device list that --devices, the element's devices property and the server
// take ("cuda:0=22GiB,cuda:1@h200,cpu"), the placement word beside it, and the byte sizes of the
// caps. Parsing either succeeds or throws qwenvl::Error in one line naming the list; what it returns
// holds at most kMaxDeviceEntries entries, each cpu or cuda:N with a known profile and a positive
// cap, and reads back the same from describe(): the form the plan prints it in.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "qwenvl/error.h"
#include "qwenvl/placement.h"
#include "runtime/placement/byte_size.h"
#include "runtime/placement/device_list.h"

namespace {

void check_list(const std::string& list) {
  using namespace qwenvl;
  std::vector<DeviceSpec> specs;
  try {
    specs = parse_devices(list);
  } catch (const Error& e) {
    const std::string message = e.what();
    qwenvl::fuzz::require(message.rfind("device list", 0) == 0, "the error does not name the device list: " + message);
    qwenvl::fuzz::require(message.find('\n') == std::string::npos || list.find('\n') != std::string::npos,
                          "the error is not one line: " + message);
    return;
  }
  qwenvl::fuzz::require(!specs.empty() && specs.size() <= runtime::placement::kMaxDeviceEntries,
                        "a list of " + std::to_string(specs.size()) + " entries");
  std::string again;
  for (const DeviceSpec& spec : specs) {
    qwenvl::fuzz::require(spec.device == "cpu" || spec.device.rfind("cuda:", 0) == 0, "device '" + spec.device + "'");
    qwenvl::fuzz::require(!spec.profile.empty(), "no profile for " + spec.device);
    qwenvl::fuzz::require(!spec.cap_bytes || *spec.cap_bytes > 0, "a cap that is not positive for " + spec.device);
    again += (again.empty() ? "" : ",") + runtime::placement::describe(spec);
  }
  // describe() rounds a cap to one decimal of its unit: the devices, profiles and caps' presence
  // read back the same.
  const std::vector<DeviceSpec> back = parse_devices(again);
  qwenvl::fuzz::require(back.size() == specs.size(), "'" + again + "' reads back as another number of entries");
  for (size_t i = 0; i < specs.size(); ++i)
    qwenvl::fuzz::require(back[i].device == specs[i].device && back[i].profile == specs[i].profile &&
                              back[i].cap_bytes.has_value() == specs[i].cap_bytes.has_value(),
                          "'" + again + "' reads back as another entry " + std::to_string(i + 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 3);
  check_list(parts[0].c_str());  // a property or flag value is a C string: no NUL inside
  if (parts.size() > 1) {
    try {
      (void)parse_placement(parts[1]);
    } catch (const Error& e) {
      fuzz::require(std::string(e.what()).find("placement") != std::string::npos, "the error does not say placement");
    }
  }
  if (parts.size() > 2) {
    std::string why;
    const auto bytes = runtime::placement::parse_byte_size(parts[2], why);
    fuzz::require(bytes.has_value() != !why.empty(), "a size and a reason, or neither");
    if (bytes) {
      fuzz::require(*bytes > 0, "a size that is not positive");
      fuzz::require(!runtime::placement::format_bytes(*bytes).empty(), "no text for a size");
    }
  }
  return 0;
}
