// A private pool of libtorch's CUDA caching allocator that takes every allocation one thread makes
// on a device, so that the memory of a pipeline stage (its weights, KV cache, activations and
// workspaces, all allocated by its worker thread) is measured apart from the other stages sharing
// the card: the bytes the pool reserves from the device, at their peak. Allocations made while a
// CUDA graph records go to the graph's own pool, as libtorch requires.
//
// While any such pool routes allocations, libtorch's allocator defers the events of blocks used on
// several streams (record_stream) as it does during graph capture; the engine records none.
// Builds without CUDA, and the CPU: inert (0 bytes).
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

namespace qwenvl::kernels {

class ThreadMemoryPool {
 public:
  // From now on, what `thread` allocates on `device` comes from this pool. Keep it until every
  // tensor so allocated is gone (they go back to it).
  ThreadMemoryPool(const at::Device& device, std::thread::id thread);
  ~ThreadMemoryPool();
  ThreadMemoryPool(const ThreadMemoryPool&) = delete;
  ThreadMemoryPool& operator=(const ThreadMemoryPool&) = delete;

  // Notes the bytes the pool reserves now: its peak is the most noted. Reserved bytes stay reserved
  // (cached) after the tensors go, so a call after each piece of work sees the peak of that work;
  // cheap unless the device's reserved bytes changed since the last call. Thread-safe.
  void sample();
  int64_t peak_reserved_bytes() const { return peak_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // null on the CPU
  std::mutex sample_mutex_;
  int64_t device_reserved_seen_ = -1;
  std::atomic<int64_t> peak_{0};
};

// The bytes the caching allocator's pool (a c10::MempoolId_t, by its two halves) reserves on CUDA
// device `index` now. 0 without CUDA.
int64_t pool_reserved_bytes(int index, uint64_t pool_first, uint64_t pool_second);

}  // namespace qwenvl::kernels
