// A stage's job queue, thread and memory pool (stage_worker.h).
#include "runtime/stages/stage_worker.h"

#include <exception>
#include <future>
#include <utility>


namespace qwenvl::runtime::stages {

StageWorker::StageWorker(at::Device device) : stream_(device), thread_([this] { loop(); }) {
  // Before any job is posted: everything the thread allocates goes to the pool.
  pool_ = std::make_unique<kernels::ThreadMemoryPool>(device, thread_.get_id());
}

StageWorker::~StageWorker() { stop(); }

void StageWorker::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StageWorker::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_all();
}

void StageWorker::run_now(const std::function<void()>& work) {
  std::promise<void> done;
  post([&] {
    try {
      work();
      done.set_value();
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  done.get_future().get();
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
    try {
      stream_.run(job);
      pool_->sample();
    } catch (...) {
      // Only the stream's final wait can throw here (a job reports its own failures, having waited
      // for its work): a lost device, which the job has reported or the next one will.
    }
  }
}

}  // namespace qwenvl::runtime::stages
