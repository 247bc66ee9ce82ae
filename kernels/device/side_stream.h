// Device work of a thread beside the inference loop (the engine's request preparation) on a stream
// of its own, so that it overlaps the loop's work instead of queueing behind it on the current
// stream. Builds without CUDA run the work as is (a CUDA device then fails in the kernels it calls).
#pragma once

#include <ATen/ATen.h>

#include <functional>

namespace qwenvl::kernels {

// Runs `work` with a stream from libtorch's pool current for `device` (on this thread only), then
// blocks this thread until the work queued on that stream has finished, so that the tensors it
// produced may be read on any stream. A CPU device runs `work` alone.
void run_on_side_stream(const at::Device& device, const std::function<void()>& work);

// The same with one stream, taken from the pool when made, for every run: for a thread that works
// on a device for long (a pipeline stage), so that the caching allocator reuses from one run to the
// next what the work freed (it keeps freed blocks for the stream that allocated them).
class SideStream {
 public:
  explicit SideStream(const at::Device& device);
  void run(const std::function<void()>& work) const;

 private:
  at::Device device_;
  c10::Stream stream_;  // the device's default stream on the CPU (unused)
};

}  // namespace qwenvl::kernels
