// Where a Qwen2.5-VL model's parts go over the devices of one host, decided before anything is
// loaded: from the model directory's config.json and preprocessor_config.json alone (never the
// weights, never a GPU), so that a 72B plan can be checked on a laptop.
//
//   qwenvl::PlanRequest request;
//   request.model_dir = "/models/Qwen2.5-VL-7B-Instruct";
//   request.devices = "cuda:0=22GiB,cuda:1=22GiB";
//   qwenvl::Plan plan = qwenvl::plan(request);   // throws qwenvl::Error when nothing fits, saying what would
//   std::puts(qwenvl::to_text(plan).c_str());
//
//   request.split = qwenvl::parse_layer_split("0-10,11-27");   // price this split instead of searching
//
// The device list is one syntax for every front end (engine options, qwenvl-cli, the element):
// comma-separated entries DEVICE[@PROFILE][=CAP], e.g. "cuda:0=22GiB,cuda:1@h200,cpu=8GiB".
//   DEVICE   cpu, cuda (= cuda:0) or cuda:N. The same device may appear more than once: stages
//            (or replicas) sharing a card, each entry with its own share of it.
//   PROFILE  the rates and memory the planner assumes for the device: h100 (the default for cuda),
//            h200, cpu (the only one for cpu).
//   CAP      the most this entry may use: a number (decimals allowed) and a unit, B, KiB, MiB, GiB,
//            TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000), e.g. 22GiB, 22.5GiB, 80GB.
//            Without a cap a cuda entry gets its profile's memory less the CUDA context (shared
//            evenly with the card's other uncapped entries), and cpu the host's available memory
//            less a reserve; a cpu cap is the host-memory budget the plan respects.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qwenvl/error.h"

namespace qwenvl {

// auto: replicas where a whole model with its KV cache fits every device and that gives more
// tokens per second, else a pipeline. pipeline: contiguous ranges of the language model's layers,
// one stage per device. replicas: a whole model on every device, requests shared between them.
enum class Placement { kAuto, kPipeline, kReplicas };

// "auto", "pipeline" or "replicas"; throws Error naming the bad word.
Placement parse_placement(const std::string& text);
const char* placement_name(Placement placement);

// One entry of a device list.
struct DeviceSpec {
  std::string device;                // "cpu" or "cuda:N" ("cuda" is read as "cuda:0")
  std::string profile;               // "h100", "h200" or "cpu"
  std::optional<int64_t> cap_bytes;  // unset: the device's memory less a margin
};

// Parses a device list (see above); throws Error naming the entry at fault.
std::vector<DeviceSpec> parse_devices(const std::string& list);

// A pipeline given by hand, to be priced instead of searched (as vLLM's VLLM_PP_LAYER_PARTITION, for
// checking a split made by hand or by another tool): for each entry of the device list, in order,
// the decoder layers it holds. The embeddings go with layer 0's device, the final norm and LM head
// with the last layer's; the vision tower runs on the entry vision_device (which may hold no layers:
// then it runs the tower alone). The split must be a pipeline: every layer on exactly one entry, in
// list order, each entry holding layers or the vision tower.
struct LayerSplit {
  struct Range {
    int64_t first = 0, end = 0;  // layers [first, end); first == end: none
  };
  std::vector<Range> layers;  // one per entry of the device list
  int vision_device = 0;      // the index in the device list of the entry that runs the vision tower
};

// "0-10,11-27": one item per device entry, an inclusive range A-B, one layer A, or - (no layers);
// throws Error naming the item at fault. Whether it fits the model and the device list is checked
// by plan().
LayerSplit parse_layer_split(const std::string& layers, int vision_device = 0);

struct PlanRequest {
  std::string model_dir;        // config.json and preprocessor_config.json are read
  std::string devices = "cpu";  // a device list
  Placement placement = Placement::kAuto;
  std::string dtype = "auto";        // as EngineOptions::dtype; auto: bf16 if any device is cuda, else fp32
  int max_batch = 16;                // sequences decoded together (per replica)
  int64_t max_context = 8192;        // prompt + generated tokens of one sequence
  int64_t kv_block_size = 64;        // tokens per KV block
  int64_t max_pixels = 0;            // the largest image after resizing; 0: the image processor's
  int images_per_step = 0;           // images one vision forward takes at most; 0: max_batch
  int64_t prefill_chunk_tokens = 0;  // tokens one prefill forward takes at most; 0: max_context
  // The time model's mean request: one image of this many pixels (0: 448x448, the caption workload of
  // docs/BENCHMARK-METHOD.md; at most max_pixels), a short question, new_tokens generated.
  int64_t image_pixels = 0;
  int new_tokens = 128;
  bool cuda_graphs = true;  // decode steps replayed as CUDA graphs (their memory pool is counted)
  // Set: price this pipeline with the models the search uses instead of searching (placement auto or
  // pipeline). A split over some device's budget is planned all the same (Plan::fits says so).
  std::optional<LayerSplit> split;
};

// Predicted bytes on one device at its peak.
struct MemoryEstimate {
  int64_t weights = 0;      // the tensors of the parts it holds, exactly as the checkpoint's shapes say
  int64_t kv_cache = 0;     // its layers' share of the paged KV cache
  int64_t activations = 0;  // the largest transient working set (vision, prefill chunk, logits)
  int64_t workspace = 0;    // cuBLAS workspaces and the decode graphs' memory pool
  int64_t margin = 0;       // allocator rounding and fragmentation
  int64_t total() const { return weights + kv_cache + activations + workspace + margin; }
};

struct DevicePlan {
  std::string device;         // "cuda:0"
  std::string profile;        // "h100"
  int64_t budget_bytes = 0;   // what it may use
  std::string budget_source;  // where the budget comes from, for a person
  int replica = -1;           // replicas: which one (every device holds the whole model)
  int stage = -1;             // pipeline: position of its layers in the pipeline; -1 without layers
  int64_t first_layer = 0;    // the language model's layers [first_layer, end_layer)
  int64_t end_layer = 0;
  bool embeddings = false;    // the token embeddings (the first stage)
  bool lm_head = false;       // the final norm, the LM head and sampling (the last stage)
  bool vision_tower = false;  // the vision tower runs here
  MemoryEstimate memory;
  // Predicted times at the device's profile rates: one decode step of its batch (a pipeline stage:
  // of one micro-batch), one prefill chunk, one image of the mean request, and its share of a step
  // of the workload (decode plus the amortised prefill and vision of the requests that join).
  double decode_ms = 0, prefill_ms = 0, vision_ms = 0, step_ms = 0;
  // What its predicted total exceeds its budget by (only a split given by hand can).
  int64_t over_budget_bytes() const { return memory.total() > budget_bytes ? memory.total() - budget_bytes : 0; }
};

struct Plan {
  Placement mode = Placement::kPipeline;  // what was chosen: kPipeline (one device: one stage) or kReplicas
  std::string model;                      // the model directory's name
  std::string dtype;                      // "bfloat16", "float16" or "float32"
  int64_t text_layers = 0, vision_blocks = 0;
  PlanRequest request;              // with every default resolved
  int micro_batches = 1;            // pipeline: micro-batches in flight (one per stage)
  double tokens_per_second = 0;     // predicted generated tokens per second, all devices together
  std::vector<DevicePlan> devices;  // in the order of the device list
  std::vector<std::string> notes;   // assumptions a person should know (profile memory, shared cards)
  bool given = false;               // the pipeline of PlanRequest::split, priced rather than searched
  // Every device within its budget: always for a searched plan; a given split may not fit.
  bool fits() const {
    for (const DevicePlan& d : devices)
      if (d.over_budget_bytes() > 0) return false;
    return true;
  }
};

// Plans the placement; throws Error for a bad request, or when nothing fits: then the message says
// how much is missing on which device and what would fit (a shorter max context, fewer pixels,
// fewer sequences, more devices). With request.split it prices that pipeline instead: it throws only
// for a split that is not a pipeline of this model over these devices, and a device over its budget
// is reported in the plan (DevicePlan::over_budget_bytes, Plan::fits).
Plan plan(const PlanRequest& request);

// The plan as a device map for a person: one line per device with its layers, where the vision
// tower runs, predicted bytes (weights / KV / activations / workspace) and times, then the notes;
// for a split given (Plan::given), whether it fits and, for each device over its budget, what it needs.
std::string to_text(const Plan& plan);

}  // namespace qwenvl
