// A fixed sequence of GPU work recorded once and replayed with one launch (a CUDA graph). A decode
// step is hundreds of small kernels whose launches, issued one by one from the host, cost more
// than the kernels themselves at small batches; replayed as a graph they cost one launch.
//
// The recorded work reads and writes the same memory at every replay: its inputs must live in
// tensors allocated before recording (filled in place before each replay) and its outputs are the
// tensors it allocated while recording (overwritten by each replay). Graphs built with a shared
// pool reuse each other's scratch memory, so they must never run at the same time and an output
// must be read before another graph of the pool replays. Builds without CUDA throw.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace qwenvl::kernels {

class DeviceGraph {
 public:
  // Runs `work` once on a side stream of `device` (lazy initialisations, such as cuBLAS
  // workspaces, must happen before recording), then records it on that stream. Memory the work
  // allocates comes from `share_pool_with`'s pool when given, else from a new private pool.
  DeviceGraph(at::Device device, const std::function<void()>& work, const DeviceGraph* share_pool_with = nullptr);
  ~DeviceGraph();
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;

  // Launches the recorded work on the device's current stream.
  void replay();
  // The bytes its memory pool (shared with the graphs that share it) reserves on the device.
  int64_t pool_reserved_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwenvl::kernels
