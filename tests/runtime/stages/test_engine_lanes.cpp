// The engine running a pipeline in lanes (scheduler.h, staged_executor.h) on the CPU: requests that
// join the running lanes at different times, one cancelled and one past its deadline mid-answer,
// get the ids one device gives them; a failed step fails its lane's sequences only; and consecutive
// decode steps overlap across the stages, so that a round of tokens costs about the rows times the
// slowest stage, not each step filled and drained.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../../nn/network_reference.h"
#include "qwenvl/placement.h"
#include "runtime/stages/engine_with_tuning.h"

namespace qwenvl {
namespace {

using test::NetworkCase;
using test::case_request;

std::string tiny_a() { return (test::fixtures_dir() / "models" / "tiny-a").string(); }

// tiny-a over cpu,cpu,cpu, a layer a stage, with `micro_batches` lanes (or one, with lanes off).
std::unique_ptr<Engine> three_stages(int max_batch, runtime::stages::StageTuning tuning) {
  EngineOptions o;
  o.model_dir = tiny_a();
  o.devices = "cpu,cpu,cpu";
  o.placement = "pipeline";
  o.max_batch = max_batch;
  o.max_context = 4096;
  tuning.split = parse_layer_split("0,1,2");
  return runtime::stages::create_engine(o, tuning);
}

// A case's request, answering `tokens` tokens whatever it picks.
test::CaseRequest long_request(const NetworkCase& c, int tokens) {
  test::CaseRequest r = case_request(c);
  r.request.sampling.max_new_tokens = tokens;
  r.request.sampling.ignore_eos = true;
  return r;
}

constexpr int kDriverTokens = 40, kCancelledTokens = 60, kJoinerTokens = 16;

// A driver answers kDriverTokens; the other cases join one by one as its answer streams (every
// other piece), so that they land in lanes already running; a request is cancelled after a few
// pieces of its own and one passes its deadline. Three lanes, eight rows at most.
TEST(EngineLanes, RequestsJoiningRunningLanesGetOneDevicesIds) {
  const auto cases = test::load_network_cases("tiny-a");
  ASSERT_GE(cases.size(), 3u);

  // What one device answers, every request submitted together.
  std::vector<std::vector<int32_t>> want;
  {
    EngineOptions o;
    o.model_dir = tiny_a();
    o.devices = "cpu";
    o.max_batch = 8;
    o.max_context = 4096;
    auto one = Engine::create(o);
    std::vector<test::CaseRequest> keep;
    std::vector<std::future<Result>> futures;
    keep.push_back(long_request(cases.front(), kCancelledTokens));  // the driver's answer is its start
    for (size_t i = 1; i < cases.size(); ++i) keep.push_back(long_request(cases[i], kJoinerTokens));
    for (auto& r : keep) futures.push_back(one->submit(std::move(r.request)).result);
    for (auto& f : futures) {
      Result r = f.get();
      ASSERT_EQ(r.status, Status::kAnswered) << r.error;
      want.push_back(r.token_ids);
    }
  }

  runtime::stages::StageTuning tuning;
  tuning.micro_batches = 3;
  auto engine = three_stages(/*max_batch=*/8, tuning);

  auto cancelled = long_request(cases.front(), kCancelledTokens);
  std::atomic<int> cancelled_pieces{0};
  cancelled.request.on_partial = [&](RequestId id, std::string_view) {
    if (++cancelled_pieces == 4) engine->cancel(id);
  };
  auto cancelled_future = engine->submit(std::move(cancelled.request)).result;

  auto expired = long_request(cases.back(), 2000);
  expired.request.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  auto expired_future = engine->submit(std::move(expired.request)).result;

  // Joiner i (case i) is submitted at the driver's piece 2 * i, or after it if the driver streams
  // fewer pieces.
  std::vector<test::CaseRequest> joiners;
  for (size_t i = 1; i < cases.size(); ++i) joiners.push_back(long_request(cases[i], kJoinerTokens));
  std::vector<std::promise<std::future<Result>>> joined(joiners.size());
  std::mutex join_mutex;
  size_t submitted = 0;
  auto join_up_to = [&](size_t count) {
    std::lock_guard<std::mutex> lock(join_mutex);
    for (; submitted < count && submitted < joiners.size(); ++submitted)
      joined[submitted].set_value(engine->submit(std::move(joiners[submitted].request)).result);
  };
  auto driver = long_request(cases.front(), kDriverTokens);
  int driver_pieces = 0;  // on the engine's thread only
  driver.request.on_partial = [&](RequestId, std::string_view) {
    ++driver_pieces;
    if (driver_pieces % 2 == 0) join_up_to(static_cast<size_t>(driver_pieces / 2));
  };
  Result first = engine->submit(std::move(driver.request)).result.get();
  join_up_to(joiners.size());
  EXPECT_GE(driver_pieces, 2 * static_cast<int>(joiners.size())) << "every joiner joined while the driver ran";

  ASSERT_EQ(first.status, Status::kAnswered) << first.error;
  EXPECT_EQ(first.token_ids, std::vector<int32_t>(want[0].begin(), want[0].begin() + kDriverTokens));
  for (size_t i = 0; i < joined.size(); ++i) {
    Result r = joined[i].get_future().get().get();
    ASSERT_EQ(r.status, Status::kAnswered) << cases[i + 1].name << ": " << r.error;
    EXPECT_EQ(r.token_ids, want[i + 1]) << cases[i + 1].name << " joined at the driver's piece " << 2 * (i + 1);
  }
  Result third = cancelled_future.get();
  EXPECT_EQ(third.status, Status::kCancelled);
  ASSERT_LT(third.token_ids.size(), static_cast<size_t>(kCancelledTokens));
  EXPECT_EQ(third.token_ids, std::vector<int32_t>(want[0].begin(), want[0].begin() + third.token_ids.size()))
      << "what it had generated until cancelled";
  EXPECT_EQ(expired_future.get().status, Status::kExpired);
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.answered, 1 + joiners.size());
  EXPECT_EQ(stats.cancelled, 1u);
  EXPECT_EQ(stats.expired, 1u);
}

// Two lanes of one sequence each over cpu,cpu; the second stage throws once, in the middle of the
// answers (its 8th forward: the prefills are its first two or three). The step that throws is one
// lane's: its sequence fails with the reason, the other lane's answers with one device's ids (one
// step at a time, both would fail), and every block goes back.
TEST(EngineLanes, AFailedStepFailsItsLaneOnly) {
  const auto cases = test::load_network_cases("tiny-a");
  EngineOptions o;
  o.model_dir = tiny_a();
  o.devices = "cpu";
  o.max_batch = 2;
  o.max_context = 4096;
  std::vector<int32_t> want;
  {
    auto one = Engine::create(o);
    auto r = long_request(cases.front(), kJoinerTokens);
    const Result alone = one->submit(std::move(r.request)).result.get();
    ASSERT_EQ(alone.status, Status::kAnswered) << alone.error;
    want = alone.token_ids;
  }
  o.devices = "cpu,cpu";
  o.placement = "pipeline";
  runtime::stages::StageTuning tuning;
  tuning.micro_batches = 2;
  tuning.split = parse_layer_split("0,1-2");
  std::atomic<int> forwards{0};
  tuning.before_forward = [&](size_t entry) {
    if (entry == 1 && ++forwards == 8) throw std::runtime_error("injected: a fault in one lane's step");
  };
  auto engine = runtime::stages::create_engine(o, tuning);
  std::vector<test::CaseRequest> keep;
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < 2; ++i) keep.push_back(long_request(cases.front(), kJoinerTokens));
  for (auto& r : keep) futures.push_back(engine->submit(std::move(r.request)).result);
  int answered = 0, failed = 0;
  for (auto& f : futures) {
    const Result r = f.get();
    if (r.status == Status::kAnswered) {
      ++answered;
      EXPECT_EQ(r.token_ids, want);
    } else {
      ++failed;
      EXPECT_EQ(r.status, Status::kFailed);
      EXPECT_NE(r.error.find("injected: a fault in one lane's step"), std::string::npos) << r.error;
    }
  }
  EXPECT_EQ(answered, 1);
  EXPECT_EQ(failed, 1);
  auto stats = engine->stats();
  for (int i = 0; i < 200 && stats.kv_blocks_used != 0; ++i) {  // retired just after the answer
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stats = engine->stats();
  }
  EXPECT_EQ(stats.kv_blocks_used, 0) << "the blocks of both went back";
}

// Each of three stages sleeps d per row it runs; three sequences decode in three lanes of a row
// each. In lanes a lane's next step enters stage 1 as soon as its token is picked, while the other
// lanes' steps are in stages 2 and 3: every stage is busy, and a round of tokens (one for each
// sequence) takes 3 d, the rows times the slowest stage. With one lane (each step waits until its
// three micro-batches have left stage 3, as before lanes) a round is the step, filled and drained:
// (3 + 3 - 1) d = 5 d. The bound sits halfway, at 4 d.
TEST(EngineLanes, ConsecutiveStepsOverlapSoARoundTracksTheSlowestStage) {
  using std::chrono::milliseconds;
  const auto cases = test::load_network_cases("tiny-a");
  const NetworkCase* text_only = nullptr;
  for (const auto& c : cases)
    if (c.name == "text_only") text_only = &c;
  ASSERT_NE(text_only, nullptr);
  // Delays well above the tiny model's own time a forward (a few ms), as in
  // Pipelining.StepTimeTracksTheSlowestStageNotTheSum; under sanitizers a forward costs several
  // times more, so the delays grow with it. A lane's turn adds its forwards and its pick to 3 d
  // (about 20 ms a round at d = 50 ms with a build beside it), which the bound's d of slack absorbs.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr int kScale = 4;
#else
  constexpr int kScale = 1;
#endif
  const milliseconds d(80 * kScale);
  constexpr int kRows = 3, kStages = 3, kTokens = 12;

  // The mean time a round of tokens over the three sequences, once all three run.
  auto round_ms = [&](bool lanes) {
    runtime::stages::StageTuning tuning;
    tuning.micro_batches = kRows;
    tuning.lanes = lanes;
    tuning.delay_per_row.assign(kStages, d);
    auto engine = three_stages(/*max_batch=*/kRows, tuning);
    // A first request of one token keeps the scheduler in its prefill while the others are prepared,
    // so that the three are admitted together.
    auto opener = long_request(*text_only, 1);
    auto opened = engine->submit(std::move(opener.request)).result;
    std::vector<test::CaseRequest> keep;
    std::vector<std::future<Result>> futures;
    for (int i = 0; i < kRows; ++i) keep.push_back(long_request(*text_only, kTokens));
    for (auto& r : keep) futures.push_back(engine->submit(std::move(r.request)).result);
    EXPECT_EQ(opened.get().status, Status::kAnswered);
    double sum = 0;
    for (auto& f : futures) {
      const Result r = f.get();
      EXPECT_EQ(r.status, Status::kAnswered) << r.error;
      EXPECT_EQ(r.generated_tokens, kTokens);
      sum += (r.total_ms - r.ttft_ms) / (kTokens - 1);  // after its first token, one a round
    }
    return sum / kRows;
  };
  const double in_lanes = round_ms(true);
  const double one_lane = round_ms(false);
  const double unit = static_cast<double>(d.count());
  const double slowest = kRows * unit;                  // the rows through the slowest stage
  const double filled = (kRows + kStages - 1) * unit;  // one lane: a step filled and drained
  std::printf("a round of %d tokens (3 stages of %.0f ms a row): %.1f ms in %d lanes, %.1f ms in one lane; "
              "slowest stage %.0f ms, one lane's bound %.0f ms, the stages one after another %.0f ms\n",
              kRows, unit, in_lanes, kRows, one_lane, slowest, filled, kRows * kStages * unit);
  EXPECT_GE(in_lanes, slowest);
  EXPECT_LT(in_lanes, (slowest + filled) / 2) << "consecutive steps did not overlap";
  EXPECT_GE(one_lane, filled) << "one lane fills and drains the stages every step";
}

}  // namespace
}  // namespace qwenvl
