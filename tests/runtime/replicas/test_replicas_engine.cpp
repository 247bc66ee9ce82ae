// Engine::create with several devices and with a cap, on the CPU with the fixture models: replicas
// over cpu,cpu give transformers' ids (as one device does) and share the requests; a capped device
// runs within the plan's KV cache or is refused saying what is missing; a pipeline over several runs
// as stages, not replicas; cancellation and destruction with requests pending end each once.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../../error_of.h"
#include "../../nn/network_reference.h"
#include "qwenvl/engine.h"

namespace qwenvl {
namespace {

using test::case_request;
using test::ids32;

EngineOptions options_for(const std::string& model, const std::string& devices, const std::string& placement) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / model).string();
  o.devices = devices;
  o.placement = placement;
  o.max_batch = 8;
  o.max_context = 4096;
  return o;
}

class Replicas : public ::testing::TestWithParam<std::string> {};

// Every case twice, all submitted at once: both replicas take some, each answer is transformers'.
TEST_P(Replicas, SameIdsAsOneDeviceAndBothReplicasAnswer) {
  auto engine = Engine::create(options_for(GetParam(), "cpu,cpu", "replicas"));
  const auto cases = test::load_network_cases(GetParam());
  std::vector<test::CaseRequest> keep;
  std::vector<std::future<Result>> futures;
  for (int round = 0; round < 2; ++round)
    for (const auto& c : cases) {
      keep.push_back(case_request(c));
      futures.push_back(engine->submit(std::move(keep.back().request)).result);
    }
  for (size_t i = 0; i < futures.size(); ++i) {
    const auto& c = cases[i % cases.size()];
    Result result = futures[i].get();
    ASSERT_EQ(result.status, Status::kAnswered) << c.name << ": " << result.error;
    EXPECT_EQ(result.token_ids, ids32(c.t.at("greedy_ids"))) << c.name;
    EXPECT_EQ(result.text, c.info.at("greedy_text").get<std::string>()) << c.name;
  }
  const EngineStats s = engine->stats();
  EXPECT_EQ(s.answered, futures.size());
  ASSERT_EQ(s.devices.size(), 2u);
  for (const DeviceStats& d : s.devices) {
    EXPECT_EQ(d.device, "cpu");
    EXPECT_GT(d.requests, 0u) << "replica " << d.replica << " answered none";
    EXPECT_GT(d.predicted_peak_bytes, 0);
  }
  EXPECT_EQ(s.devices[0].requests + s.devices[1].requests, futures.size());
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, Replicas, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "tiny-a" ? "TinyA" : "TinyB"; });

TEST(PlannedEngine, AutoOverTwoCpusChoosesReplicasForASmallModel) {
  auto engine = Engine::create(options_for("tiny-a", "cpu,cpu", "auto"));
  EXPECT_EQ(engine->stats().devices.size(), 2u);
  EXPECT_EQ(engine->stats().devices[1].replica, 1);
}

TEST(PlannedEngine, ACappedDeviceRunsWithThePlansKvCache) {
  auto engine = Engine::create(options_for("tiny-a", "cpu=2GiB", "auto"));
  const auto cases = test::load_network_cases("tiny-a");
  auto r = case_request(cases[0]);
  Result result = engine->submit(std::move(r.request)).result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(result.token_ids, ids32(cases[0].t.at("greedy_ids")));
  const EngineStats s = engine->stats();
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_GT(s.devices[0].predicted_peak_bytes, 0);
  EXPECT_LE(s.devices[0].predicted_peak_bytes, int64_t{2} << 30);
  EXPECT_EQ(s.kv_blocks_total, 8 * (4096 / 64)) << "max batch x max context, as planned";
}

TEST(PlannedEngine, ACapTooSmallIsRefusedSayingTheShortfall) {
  const std::string error = test::error_of([] { Engine::create(options_for("tiny-a", "cpu=1MiB", "auto")); });
  EXPECT_NE(error.find("does not fit on cpu=1MiB"), std::string::npos) << error;
  EXPECT_NE(error.find("short"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line";
}

TEST(PlannedEngine, AKvCacheOverTheCapIsRefused) {
  EngineOptions o = options_for("tiny-a", "cpu=2GiB", "auto");
  o.kv_cache_bytes = int64_t{4} << 30;
  const std::string error = test::error_of([&] { Engine::create(o); });
  EXPECT_NE(error.find("kv_cache_bytes"), std::string::npos) << error;
  EXPECT_NE(error.find("more than its budget"), std::string::npos) << error;
}

// The same list with placement pipeline runs stages, not replicas (tests/runtime/stages/ check their answers).
TEST(PlannedEngine, APipelineOverSeveralDevicesRunsAsStagesNotReplicas) {
  auto engine = Engine::create(options_for("tiny-a", "cpu,cpu", "pipeline"));
  const EngineStats stats = engine->stats();
  ASSERT_EQ(stats.devices.size(), 2u);  // one per entry of the list (an entry may run the vision tower alone: stage -1)
  EXPECT_EQ(stats.devices[0].replica, -1);
  EXPECT_EQ(stats.devices[1].replica, -1);
  EXPECT_GE(std::max(stats.devices[0].stage, stats.devices[1].stage), 0);
}

TEST(PlannedEngine, CancellationAndDestructionEndEachPendingRequestOnce) {
  auto engine = Engine::create(options_for("tiny-a", "cpu,cpu", "replicas"));
  const auto cases = test::load_network_cases("tiny-a");
  std::mutex m;
  std::map<RequestId, int> endings;
  std::vector<test::CaseRequest> keep;
  std::vector<Submission> subs;
  for (int i = 0; i < 6; ++i) {
    keep.push_back(case_request(cases[0]));
    keep.back().request.sampling.max_new_tokens = 200;
    keep.back().request.sampling.ignore_eos = true;
    keep.back().request.on_complete = [&](const Result& r) {
      std::lock_guard<std::mutex> lock(m);
      ++endings[r.id];
    };
    subs.push_back(engine->submit(std::move(keep.back().request)));
  }
  EXPECT_TRUE(engine->cancel(subs[1].id));
  EXPECT_TRUE(engine->cancel(subs[2].id));  // one on each replica
  engine.reset();
  for (size_t i = 0; i < subs.size(); ++i) {
    const Result r = subs[i].result.get();
    EXPECT_EQ(r.id, subs[i].id);
    EXPECT_EQ(r.status, Status::kCancelled) << "request " << i << " cannot have finished 200 tokens";
    EXPECT_EQ(endings[subs[i].id], 1) << "request " << i;
  }
}

}  // namespace
}  // namespace qwenvl
