// The thread of one pipeline stage: runs the jobs posted to it in order, each on a stream of its
// own on a GPU (finished before the next job starts, so what it hands on may be read anywhere), so
// that stage k works on micro-batch i while stage k+1 works on micro-batch i-1.
#pragma once

#include <ATen/ATen.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace qwenvl::runtime::stages {

class StageWorker {
 public:
  explicit StageWorker(at::Device device);
  ~StageWorker();  // runs what is posted, then ends
  StageWorker(const StageWorker&) = delete;
  StageWorker& operator=(const StageWorker&) = delete;

  // Queues `job`; it must not throw (a job reports its own failure).
  void post(std::function<void()> job);

 private:
  void loop();

  const at::Device device_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qwenvl::runtime::stages
