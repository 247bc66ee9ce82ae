#include "runtime/placement/device_list.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "runtime/placement/byte_size.h"
#include "runtime/placement/device_profile.h"
#include "runtime/placement/list_items.h"

namespace qwenvl {
namespace {

using runtime::placement::find_profile;
using runtime::placement::trim;

// "cpu", "cuda", "cuda:N" -> the normalised name; empty when it is none of them.
std::string device_name(const std::string& text) {
  if (text == "cpu") return "cpu";
  if (text == "cuda") return "cuda:0";
  const std::string prefix = "cuda:";
  if (text.compare(0, prefix.size(), prefix) != 0 || text.size() == prefix.size() || text.size() > prefix.size() + 4)
    return {};
  for (size_t i = prefix.size(); i < text.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return {};
  return prefix + std::to_string(std::stoi(text.substr(prefix.size())));  // "cuda:01" is cuda:1
}

}  // namespace

Placement parse_placement(const std::string& text) {
  for (Placement p : {Placement::kAuto, Placement::kPipeline, Placement::kReplicas})
    if (text == placement_name(p)) return p;
  throw Error(fmt::format("unknown placement '{}' (use auto, pipeline or replicas)", text));
}

const char* placement_name(Placement placement) {
  switch (placement) {
    case Placement::kAuto:
      return "auto";
    case Placement::kPipeline:
      return "pipeline";
    case Placement::kReplicas:
      return "replicas";
  }
  return "unknown";
}

std::vector<DeviceSpec> parse_devices(const std::string& list) {
  if (trim(list).empty()) throw Error("device list is empty (e.g. cuda:0=22GiB,cuda:1 or cpu)");
  std::vector<DeviceSpec> specs;
  const std::vector<std::string> items = runtime::placement::list_items(list);
  for (size_t index = 0; index < items.size(); ++index) {
    const std::string& item = items[index];
    auto fail = [&](const std::string& why) {
      throw Error(fmt::format("device list '{}': entry {} '{}': {}", list, index + 1, item, why));
    };
    if (item.empty()) fail("is empty");
    if (specs.size() == runtime::placement::kMaxDeviceEntries)
      fail(fmt::format("more than {} entries", runtime::placement::kMaxDeviceEntries));

    const size_t equals = item.find('=');
    const std::string head = trim(item.substr(0, equals));
    const size_t at = head.find('@');
    DeviceSpec spec;
    spec.device = device_name(trim(head.substr(0, at)));
    if (spec.device.empty())
      fail(fmt::format("unknown device '{}' (use cpu, cuda or cuda:N)", trim(head.substr(0, at))));
    const bool cuda = runtime::placement::is_cuda(spec);
    spec.profile = runtime::placement::default_profile(cuda).name;
    if (at != std::string::npos) {
      const std::string profile = trim(head.substr(at + 1));
      try {
        spec.profile = find_profile(profile).name;
      } catch (const Error& e) {
        fail(e.what());
      }
      if (find_profile(profile).cuda != cuda)
        fail(fmt::format("profile '{}' is for {}", profile, cuda ? "the cpu device" : "cuda devices"));
    }
    if (equals != std::string::npos) {
      const std::string cap = trim(item.substr(equals + 1));
      std::string why;
      spec.cap_bytes = runtime::placement::parse_byte_size(cap, why);
      if (!spec.cap_bytes) fail(fmt::format("cap '{}': {}", cap, why));
    }
    specs.push_back(spec);
  }
  return specs;
}

namespace runtime::placement {

std::string describe(const DeviceSpec& spec) {
  std::string text = spec.device;
  if (spec.profile != default_profile(is_cuda(spec)).name) text += "@" + spec.profile;
  if (spec.cap_bytes) text += "=" + format_bytes(*spec.cap_bytes);
  return text;
}

int pipeline_micro_batches(const std::vector<std::string>& stage_devices) {
  std::set<std::string> cards;
  int cpu_stages = 0;
  for (const std::string& d : stage_devices) {
    if (d == "cpu") ++cpu_stages;
    else cards.insert(d);
  }
  return std::max(cpu_stages + static_cast<int>(cards.size()), 1);
}

}  // namespace runtime::placement
}  // namespace qwenvl
