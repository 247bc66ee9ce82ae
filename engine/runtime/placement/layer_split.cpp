#include "runtime/placement/layer_split.h"

#include <fmt/format.h>

#include <cctype>

#include "runtime/placement/device_list.h"
#include "runtime/placement/list_items.h"

namespace qwenvl {
namespace {

// A layer index as written: digits only, short enough that no model's count comes near overflow.
bool parse_layer(const std::string& text, int64_t& layer) {
  if (text.empty() || text.size() > 9) return false;
  for (char c : text)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  layer = std::stoll(text);
  return true;
}

std::string layers_text(int64_t first, int64_t last) {
  return first == last ? fmt::format("layer {}", first) : fmt::format("layers {}-{}", first, last);
}

}  // namespace

LayerSplit parse_layer_split(const std::string& layers, int vision_device) {
  if (vision_device < 0)
    throw Error(fmt::format("the vision tower's device is {}: a position in the device list, from 0", vision_device));
  LayerSplit split;
  split.vision_device = vision_device;
  const std::vector<std::string> items = runtime::placement::list_items(layers);
  for (size_t index = 0; index < items.size(); ++index) {
    const std::string& item = items[index];
    auto fail = [&](const std::string& why) {
      throw Error(fmt::format("layer split '{}': item {} '{}': {}", layers, index + 1, item, why));
    };
    if (item.empty()) fail("is empty (a range A-B, one layer A, or - for none)");
    if (index == runtime::placement::kMaxDeviceEntries)
      fail(fmt::format("more than {} items", runtime::placement::kMaxDeviceEntries));
    LayerSplit::Range range;
    if (item != "-") {
      const size_t dash = item.find('-');
      int64_t first = 0, last = 0;
      const bool one = dash == std::string::npos;
      if (!parse_layer(runtime::placement::trim(item.substr(0, dash)), first) ||
          !(one ? (last = first, true) : parse_layer(runtime::placement::trim(item.substr(dash + 1)), last)))
        fail("not a range of layers (a range A-B, one layer A, or - for none)");
      if (last < first) fail("the range runs backwards");
      range = {first, last + 1};
    }
    split.layers.push_back(range);
  }
  return split;
}

namespace runtime::placement {

Candidate given_pipeline(const LayerSplit& split, const std::vector<DeviceEntry>& entries, int64_t layers,
                         int64_t max_batch) {
  const size_t k = entries.size();
  auto name = [&](size_t i) { return fmt::format("device {} ({})", i, entries[i].spec.device); };
  auto fail = [](const std::string& why) { throw Error("layer split: " + why); };
  if (split.layers.size() != k)
    fail(fmt::format("{} range{} for {} device{} (one per entry of the device list)", split.layers.size(),
                     split.layers.size() == 1 ? "" : "s", k, k == 1 ? "" : "s"));
  if (split.vision_device < 0 || static_cast<size_t>(split.vision_device) >= k)
    fail(fmt::format("the vision tower on device {} of a list of {} (positions 0-{})", split.vision_device, k, k - 1));

  Candidate c;
  c.mode = Placement::kPipeline;
  c.roles.assign(k, StageRoles{});
  std::vector<std::string> stage_devices;  // of the entries with layers
  int64_t next = 0;  // the first layer no device before has taken
  for (size_t i = 0; i < k; ++i) {
    const LayerSplit::Range& r = split.layers[i];
    const bool vision = static_cast<size_t>(split.vision_device) == i;
    if (r.first < 0 || r.end < r.first)
      fail(fmt::format("{} holds [{}, {}), not a range of layers", name(i), r.first, r.end));
    if (r.first == r.end) {
      if (!vision) fail(fmt::format("{} holds neither layers nor the vision tower", name(i)));
      c.roles[i].vision = true;
      continue;
    }
    if (r.first > next)
      fail(fmt::format("{} {} on no device", layers_text(next, r.first - 1), r.first - next == 1 ? "is" : "are"));
    if (r.first < next)
      fail(fmt::format("{} starts at layer {}, which a device before it holds (ranges go in list order)", name(i),
                       r.first));
    if (r.end > layers)
      fail(fmt::format("{} holds up to layer {}, but the model has {} decoder layers (0-{})", name(i), r.end - 1,
                       layers, layers - 1));
    c.roles[i] = StageRoles{r.first, r.end, r.first == 0, r.end == layers, vision};
    stage_devices.push_back(entries[i].spec.device);
    next = r.end;
  }
  if (next < layers)
    fail(fmt::format("{} {} on no device", layers_text(next, layers - 1), layers - next == 1 ? "is" : "are"));
  c.micro_batches = pipeline_micro_batches(stage_devices);
  c.rows = (max_batch + c.micro_batches - 1) / c.micro_batches;
  return c;
}

}  // namespace runtime::placement
}  // namespace qwenvl
