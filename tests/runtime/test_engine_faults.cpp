// Faults the engine survives (issue 15, item 3), and the admission boundary that drop-oldest
// relies on: a batch whose prefill runs out of memory (injected through the runtime's test hook)
// fails its requests with the reason while the engine serves on; an engine destroyed with
// requests pending or running ends each of them exactly once, as cancelled; cancel_queued()
// withdraws a request only while it waits for admission. A device fault that poisons the context
// (issue 14, item 4) stops the engine for good, failing every request with the reason.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "../nn/network_reference.h"
#include "device_lost_scenario.h"
#include "qwenvl/engine.h"
#include "runtime/fault_injection.h"

namespace qwenvl {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Engine> make_engine(int max_batch) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.max_batch = max_batch;
  o.max_context = 4096;
  return Engine::create(o);
}

// A request of a fixture case that runs `tokens` tokens (past EOS); its frames live as long as it.
test::CaseRequest long_request(const test::NetworkCase& c, int tokens) {
  test::CaseRequest r = test::case_request(c);
  r.request.sampling.max_new_tokens = tokens;
  r.request.sampling.ignore_eos = true;
  return r;
}

// Every callback's results by request id, for "exactly once" checks.
struct Callbacks {
  std::mutex mutex;
  std::map<RequestId, std::vector<Result>> seen;
  std::function<void(const Result&)> hook() {
    return [this](const Result& r) {
      std::lock_guard<std::mutex> lock(mutex);
      seen[r.id].push_back(r);
    };
  }
};

TEST(EngineFaults, OutOfMemoryInAPrefillFailsItsBatchWithTheReasonAndTheEngineServesOn) {
  const auto cases = test::load_network_cases("tiny-a");
  auto engine = make_engine(4);
  runtime::inject_prefill_out_of_memory(1);
  std::vector<Submission> subs;
  std::vector<test::CaseRequest> requests;
  for (int i = 0; i < 3; ++i) requests.push_back(long_request(cases[0], 3));
  for (auto& r : requests) subs.push_back(engine->submit(std::move(r.request)));
  int failed = 0, answered = 0;
  for (auto& s : subs) {
    const Result r = s.result.get();
    if (r.status == Status::kFailed) {
      ++failed;
      EXPECT_NE(r.error.find("out of memory on cpu"), std::string::npos) << r.error;
      EXPECT_NE(r.error.find("injected by a test"), std::string::npos) << r.error;
    } else {
      EXPECT_EQ(r.status, Status::kAnswered) << r.error;
      ++answered;
    }
  }
  EXPECT_GE(failed, 1) << "the injected failure reached no request";
  EXPECT_EQ(failed + answered, 3);
  // The engine goes on: its KV blocks came back and the next request is answered.
  test::CaseRequest next = long_request(cases[0], 3);
  const Result after = engine->submit(std::move(next.request)).result.get();
  EXPECT_EQ(after.status, Status::kAnswered) << after.error;
  EXPECT_EQ(engine->stats().failed, static_cast<uint64_t>(failed));
  EXPECT_TRUE(engine->stats().fault.empty()) << "out of memory fails one batch, never the engine";
  // Blocks go back just after the last callback: none is lost to the failed batch.
  for (int i = 0; i < 500 && engine->stats().kv_blocks_used != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

// A device fault that poisons the context (injected as CUDA's illegal address) is not one batch's:
// every request running or waiting fails with the reason, later ones fail at once, and the engine
// still shuts down cleanly.
TEST(EngineFaults, ALostDeviceFailsEveryRequestWithTheReasonAndTheEngineStopsCleanly) {
  const auto cases = test::load_network_cases("tiny-a");
  runtime::inject_device_lost(0, 4);  // a prefill and some decode steps first
  test::expect_device_lost_stops_the_engine(make_engine(2), cases[0], 5);
}

TEST(EngineFaults, DestroyedWithRequestsPendingEndsEachOnceAsCancelled) {
  const auto cases = test::load_network_cases("tiny-a");
  Callbacks callbacks;
  std::vector<std::future<Result>> futures;
  std::promise<void> started;
  std::atomic<bool> once{false};
  {
    auto engine = make_engine(2);  // 2 run, the other 6 wait for admission
    for (int i = 0; i < 8; ++i) {
      test::CaseRequest r = long_request(cases[0], 2000);
      r.request.on_complete = callbacks.hook();
      r.request.on_partial = [&](RequestId, std::string_view) {
        if (!once.exchange(true)) started.set_value();
      };
      futures.push_back(engine->submit(std::move(r.request)).result);
    }
    ASSERT_EQ(started.get_future().wait_for(60s), std::future_status::ready);
  }  // destroyed with 2 running and 6 waiting
  std::lock_guard<std::mutex> lock(callbacks.mutex);
  ASSERT_EQ(callbacks.seen.size(), 8u);
  for (auto& [id, results] : callbacks.seen) {
    ASSERT_EQ(results.size(), 1u) << "request " << id << " ended more than once";
    EXPECT_EQ(results[0].status, Status::kCancelled) << "request " << id;
    EXPECT_EQ(results[0].error, "the engine is shutting down");
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(f.get().status, Status::kCancelled);
  }
}

TEST(EngineFaults, CancelQueuedWithdrawsOnlyRequestsNotYetAdmitted) {
  const auto cases = test::load_network_cases("tiny-a");
  auto engine = make_engine(1);  // one runs, the next waits
  std::promise<void> started;
  std::atomic<bool> once{false};
  test::CaseRequest first = long_request(cases[0], 2000);
  first.request.on_partial = [&](RequestId, std::string_view) {
    if (!once.exchange(true)) started.set_value();
  };
  Submission running = engine->submit(std::move(first.request));
  ASSERT_EQ(started.get_future().wait_for(60s), std::future_status::ready);
  test::CaseRequest second = long_request(cases[0], 3);
  Submission waiting = engine->submit(std::move(second.request));
  EXPECT_FALSE(engine->cancel_queued(running.id)) << "a running request was withdrawn";
  EXPECT_TRUE(engine->cancel_queued(waiting.id));
  const Result withdrawn = waiting.result.get();
  EXPECT_EQ(withdrawn.status, Status::kCancelled);
  EXPECT_TRUE(withdrawn.token_ids.empty());
  EXPECT_FALSE(engine->cancel_queued(waiting.id)) << "an ended request cannot be withdrawn";
  EXPECT_TRUE(engine->cancel(running.id));
  EXPECT_EQ(running.result.get().status, Status::kCancelled);
}

}  // namespace
}  // namespace qwenvl
