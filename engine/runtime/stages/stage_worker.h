// The thread of one pipeline stage: runs the jobs posted to it in order, on a stream of its own on
// a GPU (a job waits for its own work before it hands anything on, so that what it hands on
// may be read on any stream), so that stage k works on micro-batch i while stage k+1 works on
// micro-batch i-1. On a GPU what the thread allocates comes from a memory pool of its own
// (kernels/device/memory_pool.h): the stage's memory, measured apart from the other stages'.
#pragma once

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "kernels/device/memory_pool.h"
#include "kernels/device/side_stream.h"

namespace qwenvl::runtime::stages {

class StageWorker {
 public:
  explicit StageWorker(at::Device device);
  ~StageWorker();  // stop(), then the pool goes
  // Runs what is posted, then ends the thread; the pool stays until destruction, for the tensors
  // the stage still holds.
  void stop();
  StageWorker(const StageWorker&) = delete;
  StageWorker& operator=(const StageWorker&) = delete;

  // Queues `job`; it must not throw (a job reports its own failure).
  void post(std::function<void()> job);
  // Runs `work` on the stage's thread (its allocations in the stage's pool) and waits for it;
  // rethrows what it throws. For setting the stage up (its weights and KV cache).
  void run_now(const std::function<void()>& work);

  // The most bytes the stage's pool has reserved from the device, noted after each job; 0 on the CPU.
  int64_t peak_reserved_bytes() const { return pool_->peak_reserved_bytes(); }

 private:
  void loop();

  const kernels::SideStream stream_;  // every job's: what one job frees, the next reuses
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
  std::unique_ptr<kernels::ThreadMemoryPool> pool_;  // routes thread_'s allocations from its start
};

}  // namespace qwenvl::runtime::stages
