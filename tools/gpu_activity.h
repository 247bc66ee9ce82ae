// Records the GPU's kernels, copies and sets between start() and stop() through CUPTI's Activity
// API (kernels replayed from CUDA graphs included, each with its graph and correlation ids). A tool
// of qwenvl-bench --idle-profile; neither the engine nor the kernels know of it. CUPTI is
// process-wide: one GpuActivity at a time. Built only where meson found cupti.h and libcupti.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "activity_summary.h"

namespace qwenvl::tools {

class GpuActivity {
 public:
  // Loads and initialises CUPTI (registers the buffer callbacks) without recording anything yet.
  // Create it before the CUDA graphs are captured: CUPTI attaching to a process late is the case
  // profilers warn about. `device` is the CUDA device stop() synchronises. Throws qwenvl::Error
  // with CUPTI's reason (e.g. insufficient privileges) when CUPTI cannot be used.
  explicit GpuActivity(int device = 0);
  ~GpuActivity();
  GpuActivity(const GpuActivity&) = delete;
  GpuActivity& operator=(const GpuActivity&) = delete;

  // Starts recording (drops what an earlier start/stop left unread).
  void start();
  // Waits for the device, stops recording and flushes every buffer; records() then holds the trace.
  void stop();

  const std::vector<ActivityRecord>& records() const { return records_; }
  size_t dropped() const { return dropped_; }           // records CUPTI had no buffer space for
  size_t untimed() const { return untimed_; }           // records without timestamps
  size_t other_records() const { return other_; }       // records of kinds not asked for
  size_t buffers() const { return buffers_; }           // buffers CUPTI handed back

 private:
  friend struct GpuActivityCallbacks;
  void take_buffer(uint8_t* buffer, size_t valid_bytes);

  int device_;
  bool recording_ = false;
  bool accepting_ = false;  // from start() to the end of stop()'s flush; guarded by the buffer lock
  std::vector<ActivityRecord> records_;
  size_t dropped_ = 0, untimed_ = 0, other_ = 0, buffers_ = 0;
};

}  // namespace qwenvl::tools
