// EngineOptions::prefill_tokens_per_step: prompts admitted while others decode are prefilled inside
// the decode steps (one forward for the prompts' tokens and the running rows' next tokens). The
// answers must not change: transformers' greedy ids, and exactly what the engine gives with each
// admission prefilled on its own, for late joins, rows that end at different steps, a budget smaller
// than one prompt, the lookahead on and off, and a cancellation while a prompt waits to ride (run on
// the CPU, where the same loop runs the steps synchronously).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "../nn/network_reference.h"
#include "late_join.h"
#include "qwenvl/engine.h"
#include "qwenvl/error.h"

namespace qwenvl {
namespace {

using test::CaseRequest;
using test::NetworkCase;
using test::case_request;
using test::ids32;

std::unique_ptr<Engine> make_engine(const std::string& model, int64_t tokens_per_step, bool overlap, int max_batch) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / model).string();
  o.max_batch = max_batch;
  o.max_context = 4096;
  o.overlap_decode = overlap;
  o.prefill_tokens_per_step = tokens_per_step;
  return Engine::create(o);
}

const NetworkCase& case_named(const std::vector<NetworkCase>& cases, const std::string& name) {
  for (const auto& c : cases)
    if (c.name == name) return c;
  throw Error("no fixture case " + name);
}

// (model, tokens per step, overlap_decode)
class MixedPrefill : public ::testing::TestWithParam<std::tuple<std::string, int64_t, bool>> {
 protected:
  std::string model() const { return std::get<0>(GetParam()); }
  std::unique_ptr<Engine> engine(int max_batch = 8) const {
    return make_engine(model(), std::get<1>(GetParam()), std::get<2>(GetParam()), max_batch);
  }
};

// Requests submitted while another decodes (from its streaming callback) ride in its steps, and
// every answer is transformers' greedy one.
TEST_P(MixedPrefill, LateJoinsRideAndGiveTransformersIds) {
  auto e = engine();
  const auto cases = test::load_network_cases(model());
  CaseRequest a = case_request(cases[0]);
  a.request.sampling.max_new_tokens = 24;
  a.request.sampling.ignore_eos = true;
  std::vector<CaseRequest> late;
  for (const auto& c : cases) late.push_back(case_request(c));
  const test::LateJoin joined = test::run_late_join(*e, std::move(a), std::move(late));
  ASSERT_EQ(joined.first.status, Status::kAnswered) << joined.first.error;
  EXPECT_EQ(joined.first.token_ids.size(), 24u);
  ASSERT_EQ(joined.late.size(), cases.size());
  for (size_t i = 0; i < joined.late.size(); ++i) {
    const Result& r = joined.late[i];
    ASSERT_EQ(r.status, Status::kAnswered) << cases[i].name << ": " << r.error;
    EXPECT_EQ(r.token_ids, ids32(cases[i].t.at("greedy_ids"))) << cases[i].name;
    EXPECT_EQ(r.text, cases[i].info.at("greedy_text").get<std::string>()) << cases[i].name;
  }
  const EngineStats stats = e->stats();
  EXPECT_GT(stats.mixed_forwards, 0u) << "the late requests were prefilled on their own";
  EXPECT_GE(stats.prefill_forwards, stats.mixed_forwards);
  EXPECT_GE(stats.decode_forwards, stats.mixed_forwards);
}

// More requests than the batch holds, ending at different steps (limits of 1 to 4 tokens, the full
// answer): each admitted as a row ends, most while others decode. The answers are the engine's with
// every admission prefilled on its own.
TEST_P(MixedPrefill, AdmissionsAsRowsEndGiveTheAnswersOfPrefillsOnTheirOwn) {
  const auto cases = test::load_network_cases(model());
  auto answers = [&](Engine& engine) {
    std::vector<CaseRequest> requests;
    std::vector<std::future<Result>> futures;
    for (int i = 0; i < 12; ++i) {
      requests.push_back(case_request(cases[i % cases.size()]));
      if (i % 5 != 4) requests.back().request.sampling.max_new_tokens = 1 + i % 5;
      futures.push_back(engine.submit(std::move(requests.back().request)).result);
    }
    std::vector<Result> results;
    for (auto& f : futures) results.push_back(f.get());
    return results;
  };
  auto plain_engine = make_engine(model(), 0, std::get<2>(GetParam()), 3);
  auto mixed_engine = engine(3);
  const std::vector<Result> plain = answers(*plain_engine), mixed = answers(*mixed_engine);
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(mixed[i].status, Status::kAnswered) << i << ": " << mixed[i].error;
    EXPECT_EQ(mixed[i].token_ids, plain[i].token_ids) << i;
    EXPECT_EQ(mixed[i].finish_reason, plain[i].finish_reason) << i;
  }
  EXPECT_EQ(plain_engine->stats().mixed_forwards, 0u);
  EXPECT_GT(mixed_engine->stats().mixed_forwards, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    FixtureModels, MixedPrefill,
    ::testing::Combine(::testing::Values("tiny-a", "tiny-b"), ::testing::Values(int64_t{1}, int64_t{4096}),
                       ::testing::Bool()),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == "tiny-a" ? "TinyA" : "TinyB") +
             (std::get<1>(info.param) == 1 ? "OnePromptAStep" : "WholeBudget") +
             (std::get<2>(info.param) ? "Lookahead" : "NoLookahead");
    });

// A request cancelled while it waits to ride ends cancelled, once, and the others keep their answers.
TEST(MixedPrefillApi, CancelledWhileWaitingToRide) {
  auto e = make_engine("tiny-a", 1, false, 8);
  const auto cases = test::load_network_cases("tiny-a");
  const NetworkCase& text_only = case_named(cases, "text_only");
  CaseRequest a = case_request(cases[0]);
  a.request.sampling.max_new_tokens = 16;
  a.request.sampling.ignore_eos = true;
  // Three late requests: with one prompt a step the third waits two steps, long enough to cancel it
  // from the first one's callback of the next step.
  std::vector<CaseRequest> late = {case_request(text_only), case_request(text_only), case_request(text_only)};
  std::promise<std::vector<Submission>> submissions;
  std::vector<Submission> handles;
  std::atomic<int> pieces{0};
  std::atomic<bool> cancelled{false};
  a.request.on_partial = [&](RequestId, std::string_view) {
    const int n = ++pieces;
    if (n == 1) {
      for (auto& r : late) handles.push_back(e->submit(std::move(r.request)));
    } else if (n == 2) {
      cancelled = e->cancel(handles.back().id);
      submissions.set_value(std::move(handles));
    }
  };
  const Result first = e->submit(std::move(a.request)).result.get();
  ASSERT_EQ(first.status, Status::kAnswered) << first.error;
  std::vector<Submission> joined = submissions.get_future().get();
  EXPECT_TRUE(cancelled.load());
  const auto want = ids32(text_only.t.at("greedy_ids"));
  for (size_t i = 0; i + 1 < joined.size(); ++i) {
    const Result r = joined[i].result.get();
    ASSERT_EQ(r.status, Status::kAnswered) << r.error;
    EXPECT_EQ(r.token_ids, want);
  }
  const Result gone = joined.back().result.get();
  EXPECT_EQ(gone.status, Status::kCancelled);
  const EngineStats stats = e->stats();
  EXPECT_EQ(stats.cancelled, 1u);
  EXPECT_EQ(stats.answered, 3u);
}

TEST(MixedPrefillApi, ANegativeBudgetIsRefused) {
  try {
    make_engine("tiny-a", -1, false, 2);
    FAIL() << "a negative prefill_tokens_per_step was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prefill_tokens_per_step"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qwenvl
