// What a GPU activity trace says about the decode phase of a caption run: busy time as the union of
// kernel, copy and set intervals, the idle fraction of a window, and where the decode steps lie.
// Pure functions over plain records (tools/gpu_activity.h fills them from CUPTI), testable on a CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qwenvl::tools {

// [start_ns, end_ns): one stretch of GPU work, or a window.
struct Interval {
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
};

enum class ActivityKind { kKernel, kMemcpy, kMemset };

// One GPU activity as the profiler recorded it (timestamps in ns on CUPTI's clock).
struct ActivityRecord {
  ActivityKind kind = ActivityKind::kKernel;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  uint32_t correlation_id = 0;  // of the launching API call: every node of one graph launch shares it
  uint32_t graph_id = 0;        // 0 unless it ran as a node of a CUDA graph
  uint32_t stream_id = 0;
  std::string name;             // kernels only (as CUPTI gives it: mangled)
};

// Time within `window` covered by at least one interval: intervals are clipped to the window and
// overlaps count once.
uint64_t busy_ns(std::vector<Interval> intervals, Interval window);

// 1 - busy / window length; NaN for an empty window (nothing to be idle in).
double idle_fraction(const std::vector<Interval>& intervals, Interval window);

// Which kernels mark what. Substrings of the kernel name (mangled names contain the identifier).
struct DecodePatterns {
  // Kernels that run only in decode steps (kernels/paged_decode_attention.cu: paged_decode_kernel,
  // paged_decode_merge_kernel).
  std::string decode = "paged_decode";
  // Kernels of admitting new requests (vision and prefill attention, GPU frame preparation): a
  // step-to-step cycle that overlaps one is not a steady decode cycle.
  // ("flash_fwd" names both flash kernels: flash_fwd_kernel and flash_fwd_hopper_kernel.)
  std::vector<std::string> admission = {"flash_fwd", "frames_to_rgb_kernel", "resample_rows_kernel",
                                        "resample_columns_kernel", "patchify_levels_kernel"};
};

// The decode phase of one run.
//  - With CUDA graphs every decode step is one graph launch, so the decode kernels that ran as graph
//    nodes are grouped by correlation id, one group per step; a step spans every activity of its
//    launch (all nodes, not only the attention kernels).
//  - Window: from the start of the first decode step's earliest activity to the end of the last
//    step's latest. Decode kernels launched outside graphs (eager steps) extend it from their own
//    start/end only: without graphs the window runs from the first decode-attention kernel's start
//    to the last one's end and misses each step's work before the first layer's attention and after
//    the last's.
//  - Busy: the union of every kernel, copy and set inside the window (all streams); idle = 1 - busy
//    / window. Everything the GPU does in the window counts as busy, prefills of requests admitted
//    between steps included.
//  - Steady cycles (graphs only): from one step's start to the next step's start, kept where no
//    admission kernel (patterns.admission) overlaps it: the decode loop alone, each cycle holding a
//    step, the token sampling and the host's turn.
struct DecodePhase {
  size_t decode_kernels = 0;        // kernels whose name holds patterns.decode
  size_t eager_decode_kernels = 0;  // of those, launched outside any graph
  std::vector<Interval> steps;      // graph launches holding decode kernels, by start time
  Interval window;                  // {0, 0} when no decode kernel was found
  uint64_t busy_ns = 0;
  double idle_fraction = 0;         // NaN when the window is empty
  size_t admission_kernels_in_window = 0;
  size_t steady_cycles = 0;
  uint64_t steady_ns = 0;           // total length of the steady cycles
  uint64_t steady_busy_ns = 0;
  double steady_idle_fraction = 0;  // NaN without steady cycles
  // The steady cycles' idle time split where it happens: inside a step (between the kernels of one
  // graph launch: launch gaps and dependencies the graph cannot hide) and between steps (from one
  // launch's last activity to the next launch's first: sampling, the host's turn, the next launch).
  uint64_t steady_idle_in_steps_ns = 0;
  uint64_t steady_idle_between_steps_ns = 0;
  // GPU time per kernel name over the steady cycles, most first (name demangled): what a step spends.
  std::vector<std::pair<std::string, uint64_t>> steady_kernel_ns;
  // The idle time inside the steady cycles' steps by the activity that ends each gap (demangled
  // kernel name, "memcpy" or "memset"), most first: which launches the graph cannot start at once.
  std::vector<std::pair<std::string, uint64_t>> steady_idle_before_ns;
  // Activities (kernels, copies, sets) per step over the steady cycles: what launch gaps multiply.
  double steady_activities_per_step = 0;

  bool found() const { return decode_kernels > 0; }
};

// Records with no timestamps (start = end = 0: CUPTI could not time them) are ignored.
DecodePhase summarize_decode(const std::vector<ActivityRecord>& records, const DecodePatterns& patterns = {});

// A mangled kernel name made readable (the name itself where it does not demangle).
std::string demangled(const std::string& name);

// The `limit` most launched kernels, as "count x demangled name", most first: what a trace holds
// when the decode pattern found nothing.
std::vector<std::string> most_frequent_kernels(const std::vector<ActivityRecord>& records, size_t limit);

}  // namespace qwenvl::tools
