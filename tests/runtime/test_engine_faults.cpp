// Faults the engine survives (issue 15, item 3), and the admission boundary that drop-oldest
// relies on: a batch whose prefill runs out of memory (injected through the runtime's test hook)
// is retried in halves, and a request that runs out alone fails with the reason while the engine
// serves on; an engine destroyed with requests pending or running ends each of them exactly once,
// as cancelled; cancel_queued() withdraws a request only while it waits for admission, and at once
// even while the batch is full. A device fault that poisons the context (issue 14, item 4) stops
// the engine for good, failing every request with the reason.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../nn/network_reference.h"
#include "device_lost_scenario.h"
#include "model/config.h"
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

// --max-context 100000000 sized a KV cache for it up front (the kernel's OOM killer ended it at 23
// GB): max_context is at most the model's max_position_embeddings, and the engine reports the value
// it runs with. The request is answered.
TEST(EngineFaults, AMaxContextPastTheModelsPositionsIsClampedToThem) {
  const std::string dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  const int64_t positions = model::load_model_files(dir).model.text.max_position_embeddings;
  EngineOptions o;
  o.model_dir = dir;
  o.max_batch = 1;
  o.max_context = 100000000;
  ASSERT_LT(positions, o.max_context);
  auto engine = Engine::create(o);
  EXPECT_EQ(engine->options().max_context, positions);
  const auto cases = test::load_network_cases("tiny-a");
  test::CaseRequest request = test::case_request(cases[0]);
  const Result result = engine->submit(std::move(request.request)).result.get();
  EXPECT_EQ(result.status, Status::kAnswered) << result.error;
}

// A KV cache larger than the machine has is refused with the figures before it is allocated (not
// left to the allocator's torch error, or to the OOM killer on the CPU).
TEST(EngineFaults, AKvCacheLargerThanTheMachineIsRefusedBeforeItIsAllocated) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  auto expect_refused = [](const EngineOptions& options, const std::string& names) {
    try {
      Engine::create(options);
      ADD_FAILURE() << "an engine was created for " << names;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("the KV cache needs"), std::string::npos) << what;
      EXPECT_NE(what.find("available"), std::string::npos) << what;
      EXPECT_NE(what.find(names), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    }
  };
  o.max_batch = 1 << 20;
  o.max_context = 4096;
  expect_refused(o, "max_batch 1048576 x max_context 4096");
  o.max_batch = 1;
  o.kv_cache_bytes = int64_t{1} << 60;
  expect_refused(o, "kv_cache_bytes");
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

// Holds the inference thread in the first partial text of a running request until released, so
// that requests submitted meanwhile are all admitted together, as one prefill.
struct HeldInference {
  std::promise<void> held, release;
  std::future<void> held_future = held.get_future();
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> once{false};
  std::function<void(RequestId, std::string_view)> hook() {
    return [this](RequestId, std::string_view) {
      if (once.exchange(true)) return;
      held.set_value();
      released.wait_for(60s);
    };
  }
};

// Waits until every request submitted so far has been prepared (is in the scheduler's ready queue):
// the preparation thread works in order, and a prompt longer than max_context fails there.
void wait_until_prepared(Engine& engine) {
  Request too_long;
  for (int i = 0; i < 5000; ++i) too_long.prompt += "word ";
  const Result r = engine.submit(std::move(too_long)).result.get();
  ASSERT_EQ(r.status, Status::kFailed);
  ASSERT_NE(r.error.find("max_context"), std::string::npos) << r.error;
}

// The three requests of one prefill, its first `failures` attempts out of memory (the injected
// hook), beside a running one.
std::vector<Result> batch_with_failed_prefills(Engine& engine, const test::NetworkCase& c, int failures) {
  HeldInference hold;
  test::CaseRequest first = long_request(c, 200);
  first.request.on_partial = hold.hook();
  Submission running = engine.submit(std::move(first.request));
  EXPECT_EQ(hold.held_future.wait_for(60s), std::future_status::ready);
  std::vector<Submission> batch;
  for (int i = 0; i < 3; ++i) {
    test::CaseRequest r = long_request(c, 3);
    batch.push_back(engine.submit(std::move(r.request)));
  }
  wait_until_prepared(engine);
  runtime::inject_prefill_out_of_memory(failures);
  hold.release.set_value();
  std::vector<Result> results;
  for (auto& s : batch) results.push_back(s.result.get());
  EXPECT_EQ(running.result.get().status, Status::kAnswered);
  return results;
}

TEST(EngineFaults, OutOfMemoryInABatchedPrefillIsRetriedInHalvesAndEveryRequestIsAnswered) {
  const auto cases = test::load_network_cases("tiny-a");
  auto engine = make_engine(4);
  const std::vector<Result> results = batch_with_failed_prefills(*engine, cases[0], 1);
  for (const Result& r : results) EXPECT_EQ(r.status, Status::kAnswered) << r.error;
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.split_prefills, 1u);  // [3] out of memory, then [1] and [2]
  EXPECT_EQ(stats.failed, 1u);          // wait_until_prepared's prompt only
}

TEST(EngineFaults, ARequestOutOfMemoryAloneFailsWithTheReasonAndTheEngineServesOn) {
  const auto cases = test::load_network_cases("tiny-a");
  auto engine = make_engine(4);
  // [3] out of memory, then [1] again: that one fails; the other two, [2], are answered.
  const std::vector<Result> results = batch_with_failed_prefills(*engine, cases[0], 2);
  ASSERT_EQ(results[0].status, Status::kFailed);
  EXPECT_NE(results[0].error.find("out of memory on cpu"), std::string::npos) << results[0].error;
  EXPECT_NE(results[0].error.find("injected by a test"), std::string::npos) << results[0].error;
  EXPECT_EQ(results[1].status, Status::kAnswered) << results[1].error;
  EXPECT_EQ(results[2].status, Status::kAnswered) << results[2].error;
  EXPECT_EQ(engine->stats().split_prefills, 1u);
  // The engine goes on: its KV blocks came back and the next request is answered.
  test::CaseRequest next = long_request(cases[0], 3);
  const Result after = engine->submit(std::move(next.request)).result.get();
  EXPECT_EQ(after.status, Status::kAnswered) << after.error;
  EXPECT_EQ(engine->stats().failed, 2u);  // that one and wait_until_prepared's
  EXPECT_TRUE(engine->stats().fault.empty()) << "out of memory fails one batch, never the engine";
  // Blocks go back just after the last callback: none is lost to the failed prefills.
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
  // Withdrawn at the next step, though the batch stays full: not when the running request ends.
  ASSERT_EQ(waiting.result.wait_for(30s), std::future_status::ready);
  EXPECT_NE(running.result.wait_for(0s), std::future_status::ready) << "the withdrawal waited for a free row";
  const Result withdrawn = waiting.result.get();
  EXPECT_EQ(withdrawn.status, Status::kCancelled);
  EXPECT_TRUE(withdrawn.token_ids.empty());
  EXPECT_FALSE(engine->cancel_queued(waiting.id)) << "an ended request cannot be withdrawn";
  EXPECT_TRUE(engine->cancel(running.id));
  EXPECT_EQ(running.result.get().status, Status::kCancelled);
}

}  // namespace
}  // namespace qwenvl
