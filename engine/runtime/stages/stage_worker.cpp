// A stage's job queue and thread (stage_worker.h).
#include "runtime/stages/stage_worker.h"

#include <utility>

#include "kernels/device/side_stream.h"

namespace qwenvl::runtime::stages {

StageWorker::StageWorker(at::Device device) : device_(device), thread_([this] { loop(); }) {}

StageWorker::~StageWorker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StageWorker::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_all();
}

void StageWorker::loop() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    kernels::run_on_side_stream(device_, job);
  }
}

}  // namespace qwenvl::runtime::stages
