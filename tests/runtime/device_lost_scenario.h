// One scenario for every executor (one device, a pipeline's stage): with a lost-device fault armed
// (runtime/fault_injection.h), requests running and waiting all fail once with the fault's reason,
// a later submit fails at once with it, stats() reports it, and the engine's destructor returns.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../nn/network_reference.h"
#include "qwenvl/engine.h"

namespace qwenvl::test {

// Submits `requests` long answers of case `c` to `engine` (which runs fewer at once, so that some
// wait) and checks that the armed fault stops it for good, cleanly.
inline void expect_device_lost_stops_the_engine(std::unique_ptr<Engine> engine, const NetworkCase& c, int requests) {
  using namespace std::chrono_literals;
  std::mutex mutex;
  std::map<RequestId, std::vector<Result>> seen;
  std::vector<CaseRequest> keep;
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < requests; ++i) {
    keep.push_back(case_request(c));
    Request& r = keep.back().request;
    r.sampling.max_new_tokens = 200;
    r.sampling.ignore_eos = true;
    r.on_complete = [&](const Result& result) {
      std::lock_guard<std::mutex> lock(mutex);
      seen[result.id].push_back(result);
    };
    futures.push_back(engine->submit(std::move(r)).result);
  }
  std::string reason;
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(60s), std::future_status::ready) << "a request never ended";
    const Result r = f.get();
    EXPECT_EQ(r.status, Status::kFailed) << r.error;
    EXPECT_NE(r.error.find("illegal memory access"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("the engine has stopped"), std::string::npos) << r.error;
    if (reason.empty()) reason = r.error;
    EXPECT_EQ(r.error, reason) << "every request fails with the first fault's reason";
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(seen.size(), static_cast<size_t>(requests));
    for (const auto& [id, results] : seen) EXPECT_EQ(results.size(), 1u) << "request " << id << " ended more than once";
  }
  // Later requests fail inside submit(), with the same reason.
  CaseRequest later = case_request(c);
  std::future<Result> refused = engine->submit(std::move(later.request)).result;
  ASSERT_EQ(refused.wait_for(0s), std::future_status::ready) << "a request after the fault was not refused at once";
  const Result r = refused.get();
  EXPECT_EQ(r.status, Status::kFailed);
  EXPECT_EQ(r.error, reason);
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.fault, reason);
  EXPECT_EQ(stats.failed, static_cast<uint64_t>(requests) + 1);
  EXPECT_EQ(stats.running, 0u);
  EXPECT_EQ(stats.queued, 0u);
  // No thread is left waiting on a stage: the destructor returns (a detached waiter, so that a hang
  // fails the test instead of hanging it).
  std::promise<void> destroyed;
  std::future<void> done = destroyed.get_future();
  std::thread([&destroyed, e = std::move(engine)]() mutable {
    e.reset();
    destroyed.set_value();
  }).detach();
  EXPECT_EQ(done.wait_for(30s), std::future_status::ready) << "the engine's destructor did not return";
}

}  // namespace qwenvl::test
