// The engine running a pipeline on the CPU (placement pipeline over cpu,cpu and cpu,cpu,cpu, at
// least two micro-batches forced): every parity case of both fixture models gives transformers'
// ids and text as one device does, submitted together; and in a continuous batch a request that
// joins late gets its ids while one that is cancelled mid-answer ends cancelled and the rest go on;
// each entry reports its stage's prediction and what it holds; a stage that fails fails its step,
// and one whose device is lost stops the engine cleanly.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../../error_of.h"
#include "../../nn/network_reference.h"
#include "../device_lost_scenario.h"
#include "qwenvl/placement.h"
#include "runtime/fault_injection.h"
#include "runtime/stages/engine_with_tuning.h"

namespace qwenvl {
namespace {

using test::NetworkCase;
using test::case_request;
using test::ids32;

struct Pipeline {
  const char* model;
  const char* devices;
  const char* split;  // "" : the planner's own
  int micro_batches;
};

std::unique_ptr<Engine> make_pipeline(const Pipeline& p) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / p.model).string();
  o.devices = p.devices;
  o.placement = "pipeline";
  o.max_batch = 8;
  o.max_context = 4096;
  runtime::stages::StageTuning tuning;
  tuning.micro_batches = p.micro_batches;
  if (*p.split != '\0') tuning.split = parse_layer_split(p.split);
  return runtime::stages::create_engine(o, tuning);
}

class EnginePipeline : public ::testing::TestWithParam<Pipeline> {};

TEST_P(EnginePipeline, ConcurrentRequestsGiveTransformersIdsAndText) {
  auto engine = make_pipeline(GetParam());
  const auto cases = test::load_network_cases(GetParam().model);
  std::vector<test::CaseRequest> requests;
  std::vector<std::future<Result>> futures;
  for (const auto& c : cases) requests.push_back(case_request(c));
  for (auto& r : requests) futures.push_back(engine->submit(std::move(r.request)).result);
  for (size_t i = 0; i < cases.size(); ++i) {
    Result result = futures[i].get();
    ASSERT_EQ(result.status, Status::kAnswered) << cases[i].name << ": " << result.error;
    EXPECT_EQ(result.token_ids, ids32(cases[i].t.at("greedy_ids"))) << cases[i].name;
    EXPECT_EQ(result.text, cases[i].info.at("greedy_text").get<std::string>()) << cases[i].name;
  }
  EXPECT_EQ(engine->stats().answered, cases.size());
}

// A long request runs; from its first streamed piece a second request is submitted (it joins the
// running batch) and a third, already running beside it, is cancelled. Both survivors keep
// transformers' ids.
TEST_P(EnginePipeline, LateJoinAndCancellationInAContinuousBatch) {
  auto engine = make_pipeline(GetParam());
  const auto cases = test::load_network_cases(GetParam().model);
  const NetworkCase& first_case = cases.front();
  const NetworkCase& late_case = cases.back();
  auto cancelled = case_request(first_case);
  cancelled.request.sampling.max_new_tokens = 60;
  cancelled.request.sampling.ignore_eos = true;
  std::atomic<bool> cancel_once{false};
  cancelled.request.on_partial = [&](RequestId id, std::string_view) {
    if (!cancel_once.exchange(true)) engine->cancel(id);
  };
  auto cancel_future = engine->submit(std::move(cancelled.request)).result;

  auto late = case_request(late_case);
  std::promise<std::future<Result>> late_future;
  std::atomic<bool> joined{false};
  auto longest = case_request(first_case);
  const auto want = ids32(first_case.t.at("greedy_ids"));
  longest.request.sampling.max_new_tokens = static_cast<int>(want.size()) + 20;
  longest.request.sampling.ignore_eos = true;
  longest.request.on_partial = [&](RequestId, std::string_view) {
    if (!joined.exchange(true)) late_future.set_value(engine->submit(std::move(late.request)).result);
  };
  Result first = engine->submit(std::move(longest.request)).result.get();
  Result second = late_future.get_future().get().get();
  Result third = cancel_future.get();
  ASSERT_EQ(first.status, Status::kAnswered) << first.error;
  ASSERT_EQ(second.status, Status::kAnswered) << second.error;
  EXPECT_EQ(std::vector<int32_t>(first.token_ids.begin(), first.token_ids.begin() + want.size()), want);
  EXPECT_EQ(second.token_ids, ids32(late_case.t.at("greedy_ids"))) << "the request that joined";
  EXPECT_EQ(third.status, Status::kCancelled);
  EXPECT_LT(third.token_ids.size(), 60u);
  const auto stats = engine->stats();
  EXPECT_EQ(stats.answered, 2u);
  EXPECT_EQ(stats.cancelled, 1u);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EnginePipeline,
                         ::testing::Values(Pipeline{"tiny-a", "cpu,cpu", "0,1-2", 2},
                                           Pipeline{"tiny-a", "cpu,cpu,cpu", "0,1,2", 3},
                                           Pipeline{"tiny-b", "cpu,cpu", "0,1", 2},
                                           Pipeline{"tiny-b", "cpu,cpu,cpu", "", 2}),
                         [](const auto& info) { return "Pipeline" + std::to_string(info.index); });

// A stage that throws (as one out of memory would) fails the requests of that step with the reason;
// the engine keeps serving the next ones.
TEST(EnginePipelineFailure, AFailedStageFailsItsStepAndServingGoesOn) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.devices = "cpu,cpu";
  o.placement = "pipeline";
  runtime::stages::StageTuning tuning;
  tuning.micro_batches = 2;
  tuning.split = parse_layer_split("0,1-2");
  std::atomic<bool> thrown{false};
  tuning.before_forward = [&](size_t entry) {
    if (entry == 1 && !thrown.exchange(true)) throw std::runtime_error("injected: out of memory on the second stage");
  };
  auto engine = runtime::stages::create_engine(o, tuning);
  const auto cases = test::load_network_cases("tiny-a");
  auto doomed = case_request(cases.front());
  Result failed = engine->submit(std::move(doomed.request)).result.get();
  EXPECT_EQ(failed.status, Status::kFailed);
  EXPECT_NE(failed.error.find("injected: out of memory"), std::string::npos) << failed.error;
  auto good = case_request(cases.front());
  Result answered = engine->submit(std::move(good.request)).result.get();
  ASSERT_EQ(answered.status, Status::kAnswered) << answered.error;
  EXPECT_EQ(answered.token_ids, ids32(cases.front().t.at("greedy_ids")));
  auto stats = engine->stats();
  for (int i = 0; i < 200 && stats.kv_blocks_used != 0; ++i) {  // retired just after the answer
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stats = engine->stats();
  }
  EXPECT_EQ(stats.kv_blocks_used, 0) << "the blocks of the failed request went back";
  EXPECT_EQ(stats.failed, 1u);
}

// tiny-a over cpu,cpu,cpu as a pipeline.
EngineOptions three_cpu_stages(int max_batch) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.devices = "cpu,cpu,cpu";
  o.placement = "pipeline";
  o.max_batch = max_batch;
  o.max_context = 4096;
  return o;
}

// Each entry's stats (issue 14, item 7, as the CPU measures it): the stage on it, the plan's
// prediction, and the bytes the stage holds, which are exactly the plan's weights and KV cache for it.
TEST(EnginePipelineStats, EachStageReportsItsPredictionAndWhatItHolds) {
  const EngineOptions o = three_cpu_stages(/*max_batch=*/4);
  runtime::stages::StageTuning tuning;
  tuning.split = parse_layer_split("0,1,2", /*vision_device=*/1);
  auto engine = runtime::stages::create_engine(o, tuning);
  PlanRequest request;
  request.model_dir = o.model_dir;
  request.devices = o.devices;
  request.placement = Placement::kPipeline;
  request.max_batch = o.max_batch;
  request.max_context = o.max_context;
  request.cuda_graphs = false;
  request.split = tuning.split;
  const Plan plan = qwenvl::plan(request);
  const EngineStats stats = engine->stats();
  ASSERT_EQ(stats.devices.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const DeviceStats& d = stats.devices[i];
    const DevicePlan& p = plan.devices[i];
    EXPECT_EQ(d.device, "cpu");
    EXPECT_EQ(d.stage, static_cast<int>(i));
    EXPECT_EQ(d.predicted_peak_bytes, p.memory.total()) << "entry " << i;
    EXPECT_EQ(d.measured_peak_bytes, p.memory.weights + p.memory.kv_cache) << "entry " << i;
    EXPECT_EQ(d.context_bytes, 0);
  }
}

// A lost device in the middle stage of cpu,cpu,cpu (a context-poisoning CUDA error, injected) stops
// the engine: every request running or waiting fails once with the reason, later ones at once, and
// no thread is left waiting on a stage.
TEST(EnginePipelineFailure, ALostDeviceInTheMiddleStageStopsTheEngineCleanly) {
  const EngineOptions o = three_cpu_stages(/*max_batch=*/2);
  runtime::stages::StageTuning tuning;
  tuning.micro_batches = 2;
  tuning.split = parse_layer_split("0,1,2");
  auto engine = runtime::stages::create_engine(o, tuning);
  runtime::inject_device_lost(1, 5);  // the prefill's and a few decode steps' micro-batches first
  test::expect_device_lost_stops_the_engine(std::move(engine), test::load_network_cases("tiny-a").front(), 5);
}

// Without tuning, placement pipeline over two entries plans and runs; a split over too little
// memory is refused with the plan's reason.
TEST(EnginePipelineCreate, PlansFromTheOptions) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.devices = "cpu,cpu";
  o.placement = "pipeline";
  auto engine = Engine::create(o);
  const auto cases = test::load_network_cases("tiny-a");
  auto r = case_request(cases.front());
  Result result = engine->submit(std::move(r.request)).result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(result.token_ids, ids32(cases.front().t.at("greedy_ids")));
  o.devices = "cpu=1KiB,cpu=1KiB";
  EXPECT_FALSE(test::error_of([&] { Engine::create(o); }).empty());
}

}  // namespace
}  // namespace qwenvl
