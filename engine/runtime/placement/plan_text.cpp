// qwenvl::to_text: a plan as a device map for a person (what qwenvl-cli --plan prints); for a split
// given by hand, also whether it fits and what each device over its budget needs.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "qwenvl/placement.h"
#include "runtime/placement/byte_size.h"
#include "runtime/placement/fit_advice.h"

namespace qwenvl {
namespace {

using runtime::placement::ByteUnit;
using runtime::placement::format_in;

std::string holds(const DevicePlan& d) {
  std::vector<std::string> parts;
  if (d.replica >= 0) return fmt::format("the whole model (replica {})", d.replica);
  if (d.vision_tower) parts.push_back("vision tower");
  if (d.embeddings) parts.push_back("embeddings");
  if (d.end_layer > d.first_layer)
    parts.push_back(d.end_layer - d.first_layer == 1 ? fmt::format("layer {}", d.first_layer)
                                                     : fmt::format("layers {}-{}", d.first_layer, d.end_layer - 1));
  if (d.lm_head) parts.push_back("LM head");
  if (parts.empty()) return "nothing";
  std::string text = parts.front();
  for (size_t i = 1; i < parts.size(); ++i) text += " + " + parts[i];
  return text;
}

std::string ms(double value) { return value > 0 ? fmt::format("{:.2f}", value) : "-"; }

// Columns padded to their widest cell: the first two left-aligned (names), the rest right (numbers).
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string text;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      line += "  " + (c < 3 ? row[c] + pad : pad + row[c]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line + "\n";
  }
  return text;
}

}  // namespace

std::string to_text(const Plan& plan) {
  const PlanRequest& r = plan.request;
  std::string text;
  const int stages = static_cast<int>(
      std::count_if(plan.devices.begin(), plan.devices.end(), [](const DevicePlan& d) { return d.stage >= 0; }));
  const bool vision_alone = std::any_of(plan.devices.begin(), plan.devices.end(), [](const DevicePlan& d) {
    return d.vision_tower && d.stage < 0 && d.replica < 0;
  });
  std::string mode;
  if (plan.mode == Placement::kReplicas) {
    mode = fmt::format("{} replica{} of {} sequences", plan.devices.size(), plan.devices.size() == 1 ? "" : "s",
                       r.max_batch);
  } else {
    mode =
        fmt::format("{} of {} stage{} of layers{}, {} micro-batch{} of up to {} sequences",
                    plan.given ? "the pipeline given (a layer split, priced, not searched)" : "a pipeline", stages,
                    stages == 1 ? "" : "s", vision_alone ? " after the vision tower's device" : "", plan.micro_batches,
                    plan.micro_batches == 1 ? "" : "es", (r.max_batch + plan.micro_batches - 1) / plan.micro_batches);
  }
  text += fmt::format("{}: {} decoder layers, a vision tower of {} blocks, {}; {}\n", plan.model, plan.text_layers,
                      plan.vision_blocks, plan.dtype, mode);
  text += fmt::format(
      "  memory for: max batch {}, max context {} (KV blocks of {} tokens), images of up to {} pixels, {} a step, "
      "prefill chunks of {} tokens{}\n"
      "  times for: requests of one {}-pixel image and a short question, {} new tokens each\n\n",
      r.max_batch, r.max_context, r.kv_block_size, r.max_pixels, r.images_per_step, r.prefill_chunk_tokens,
      r.cuda_graphs ? "" : ", no CUDA graphs", r.image_pixels, r.new_tokens);

  int64_t largest = 0;
  for (const DevicePlan& d : plan.devices) largest = std::max({largest, d.memory.total(), d.budget_bytes});
  const ByteUnit unit = runtime::placement::unit_for(largest);
  auto size = [&](int64_t bytes) { return format_in(bytes, unit); };
  std::vector<std::vector<std::string>> rows = {
      {"device", "profile", "holds", "weights", "KV cache", "activations", "workspace", "margin", "total", "budget",
       "decode", "prefill", "image", "step"},
      {"", "", "", unit.name, unit.name, unit.name, unit.name, unit.name, unit.name, unit.name, "ms", "ms", "ms",
       "ms"}};
  for (const DevicePlan& d : plan.devices) {
    const MemoryEstimate& m = d.memory;
    rows.push_back({d.device, d.profile, holds(d), size(m.weights), size(m.kv_cache), size(m.activations),
                    size(m.workspace), size(m.margin), size(m.total()), size(d.budget_bytes), ms(d.decode_ms),
                    ms(d.prefill_ms), ms(d.vision_ms), ms(d.step_ms)});
  }
  text += table(rows);
  if (plan.given) {
    std::string over;
    for (const DevicePlan& d : plan.devices)
      if (d.over_budget_bytes() > 0)
        over += (over.empty() ? "" : "; ") + runtime::placement::shortfall(d.device, d.memory, d.budget_bytes);
    text += over.empty() ? "\nthe split given fits every device's budget\n"
                         : "\nthe split given does not fit: " + over + "\n";
  }

  const DevicePlan* slowest = &plan.devices.front();
  for (const DevicePlan& d : plan.devices)
    if (d.step_ms > slowest->step_ms) slowest = &d;
  text += fmt::format("\npredicted: {:.1f} generated tokens/s (the slowest device: {}, {:.2f} ms a step)\n",
                      plan.tokens_per_second, slowest->device, slowest->step_ms);
  text +=
      "  decode: one decode step of the device's sequences; prefill: one prefill chunk; image: one request's image;\n"
      "  step: decode plus the prefill and images of the requests that join per step\n";
  if (!plan.notes.empty()) {
    text += "notes:\n";
    for (const std::string& note : plan.notes) text += "  " + note + "\n";
  }
  return text;
}

}  // namespace qwenvl
