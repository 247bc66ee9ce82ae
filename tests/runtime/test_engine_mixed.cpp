// EngineOptions::prefill_tokens_per_step: prompts admitted while others decode are prefilled inside
// the decode steps (one forward for the prompts' tokens and the running rows' next tokens). The
// answers must not change: transformers' greedy ids, and exactly what the engine gives with each
// admission prefilled on its own, for late joins, rows that end at different steps, a budget smaller
// than one prompt, the lookahead on and off, and a cancellation while a prompt waits to ride or to be
// encoded. EngineOptions::encode_group: admissions encoded in groups take fewer vision forwards and
// give the same answers (run on the CPU, where the same loop runs the steps synchronously).
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

std::unique_ptr<Engine> make_engine(const std::string& model, int64_t tokens_per_step, bool overlap, int max_batch,
                                    std::optional<int> encode_group = std::nullopt) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / model).string();
  o.max_batch = max_batch;
  o.max_context = 4096;
  o.overlap_decode = overlap;
  o.prefill_tokens_per_step = tokens_per_step;
  o.encode_group = encode_group;
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
// 12 requests submitted at once, cycling through `cases`, with limits of 1 to 4 new tokens or the
// full answer: with a small batch, rows end at different steps and most are admitted as one ends.
std::vector<Result> staggered_answers(Engine& engine, const std::vector<NetworkCase>& cases) {
  std::vector<std::future<Result>> futures;
  for (size_t i = 0; i < 12; ++i) {
    CaseRequest r = case_request(cases[i % cases.size()]);
    if (i % 5 != 4) r.request.sampling.max_new_tokens = static_cast<int>(1 + i % 5);
    futures.push_back(engine.submit(std::move(r.request)).result);
  }
  std::vector<Result> results;
  for (auto& f : futures) results.push_back(f.get());
  return results;
}

TEST_P(MixedPrefill, AdmissionsAsRowsEndGiveTheAnswersOfPrefillsOnTheirOwn) {
  const auto cases = test::load_network_cases(model());
  auto answers = [&](Engine& engine) { return staggered_answers(engine, cases); };
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

// Admissions encoded in groups of 4 (the batch full, so none encoded sooner than its group or 4
// steps) take fewer vision forwards than each encoded at once, for the same answers as prefills on
// their own.
TEST(MixedPrefillApi, EncodingInGroupsTakesFewerVisionForwardsForTheSameAnswers) {
  std::vector<NetworkCase> with_media;
  for (const auto& c : test::load_network_cases("tiny-a"))
    if (c.name != "text_only") with_media.push_back(c);
  ASSERT_FALSE(with_media.empty());
  auto plain = make_engine("tiny-a", 0, false, 4);
  auto each = make_engine("tiny-a", 4096, false, 4, 1);
  auto grouped = make_engine("tiny-a", 4096, false, 4, 4);
  const std::vector<Result> want = staggered_answers(*plain, with_media);
  for (Engine* e : {each.get(), grouped.get()}) {
    const std::vector<Result> got = staggered_answers(*e, with_media);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].status, Status::kAnswered) << i << ": " << got[i].error;
      EXPECT_EQ(got[i].token_ids, want[i].token_ids) << i;
    }
    EXPECT_GT(e->stats().mixed_forwards, 0u);
  }
  const uint64_t each_forwards = each->stats().vision_forwards, grouped_forwards = grouped->stats().vision_forwards;
  EXPECT_LT(grouped_forwards, each_forwards) << "encode_group 4: " << grouped_forwards << ", 1: " << each_forwards;
}

// A request of tiny-a's first case (16 tokens) runs; from its first streamed piece `late` text-only
// requests are submitted, and from its second the last of them is cancelled. Every late request
// ends answered with the case's greedy ids but the cancelled one, which ends cancelled, once.
void cancel_the_last_late_join(Engine& e, size_t late_count) {
  const auto cases = test::load_network_cases("tiny-a");
  const NetworkCase& text_only = case_named(cases, "text_only");
  CaseRequest a = case_request(cases[0]);
  a.request.sampling.max_new_tokens = 16;
  a.request.sampling.ignore_eos = true;
  std::vector<CaseRequest> late;
  for (size_t i = 0; i < late_count; ++i) late.push_back(case_request(text_only));
  std::promise<std::vector<Submission>> submissions;
  std::vector<Submission> handles;
  std::atomic<int> pieces{0};
  std::atomic<bool> cancelled{false};
  a.request.on_partial = [&](RequestId, std::string_view) {
    const int n = ++pieces;
    if (n == 1) {
      for (auto& r : late) handles.push_back(e.submit(std::move(r.request)));
    } else if (n == 2) {
      cancelled = e.cancel(handles.back().id);
      submissions.set_value(std::move(handles));
    }
  };
  const Result first = e.submit(std::move(a.request)).result.get();
  ASSERT_EQ(first.status, Status::kAnswered) << first.error;
  std::vector<Submission> joined = submissions.get_future().get();
  EXPECT_TRUE(cancelled.load());
  const auto want = ids32(text_only.t.at("greedy_ids"));
  for (size_t i = 0; i + 1 < joined.size(); ++i) {
    const Result r = joined[i].result.get();
    ASSERT_EQ(r.status, Status::kAnswered) << r.error;
    EXPECT_EQ(r.token_ids, want);
  }
  EXPECT_EQ(joined.back().result.get().status, Status::kCancelled);
  const EngineStats stats = e.stats();
  EXPECT_EQ(stats.cancelled, 1u);
  EXPECT_EQ(stats.answered, late_count);
}

// A request cancelled while it waits to ride: three late ones, each encoded at once, one prompt a
// step, so the third waits two steps, long enough to be cancelled from the next step's callback.
TEST(MixedPrefillApi, CancelledWhileWaitingToRide) {
  auto e = make_engine("tiny-a", 1, false, 8, 1);
  cancel_the_last_late_join(*e, 3);
}

// A request cancelled while it waits for its encoding group: two late ones wait for a group of 8
// (the batch has room for 5 more only) for 4 steps; the second is cancelled before it is encoded.
TEST(MixedPrefillApi, CancelledWhileWaitingToBeEncoded) {
  auto e = make_engine("tiny-a", 4096, false, 8, 8);
  cancel_the_last_late_join(*e, 2);
  EXPECT_EQ(e->stats().mixed_forwards, 1u) << "the kept one rode in one step";
}

TEST(MixedPrefillApi, AnEncodeGroupBelowOneIsRefused) {
  try {
    make_engine("tiny-a", 4096, false, 2, 0);
    FAIL() << "encode_group 0 was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("encode_group"), std::string::npos) << e.what();
  }
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
