// EngineOptions::overlap_decode: the next decode step is queued before the host reads the tokens it
// appends, and rows of sequences that stop are dropped afterwards. The answers must not change:
// transformers' greedy ids, and exactly what the engine without the lookahead gives for stop
// strings, short limits, sampling, late joins and cancellation (run here on the CPU, where the same
// loop runs the steps synchronously).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../nn/network_reference.h"
#include "qwenvl/engine.h"

namespace qwenvl {
namespace {

using test::CaseRequest;
using test::NetworkCase;
using test::case_request;
using test::ids32;

std::unique_ptr<Engine> make_engine(const std::string& model, std::optional<bool> overlap) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / model).string();
  o.max_batch = 8;
  o.max_context = 4096;
  o.overlap_decode = overlap;
  return Engine::create(o);
}

// A stop string from the middle of a known answer, on character boundaries.
std::string stop_in_middle_of(const std::string& full) {
  size_t from = full.size() / 2;
  while (from > 0 && (static_cast<unsigned char>(full[from]) & 0xC0) == 0x80) --from;
  size_t to = from + 1;
  while (to < full.size() && (static_cast<unsigned char>(full[to]) & 0xC0) == 0x80) ++to;
  return full.substr(from, to - from);
}

class OverlapDecode : public ::testing::TestWithParam<std::string> {};

TEST_P(OverlapDecode, ConcurrentRequestsGiveTransformersIds) {
  auto engine = make_engine(GetParam(), true);
  const auto cases = test::load_network_cases(GetParam());
  std::vector<CaseRequest> requests;
  std::vector<std::future<Result>> futures;
  for (int round = 0; round < 2; ++round)
    for (const auto& c : cases) {
      requests.push_back(case_request(c));
      futures.push_back(engine->submit(std::move(requests.back().request)).result);
    }
  for (size_t i = 0; i < futures.size(); ++i) {
    const Result r = futures[i].get();
    const NetworkCase& c = cases[i % cases.size()];
    ASSERT_EQ(r.status, Status::kAnswered) << c.name << ": " << r.error;
    EXPECT_EQ(r.token_ids, ids32(c.t.at("greedy_ids"))) << c.name;
    EXPECT_EQ(r.text, c.info.at("greedy_text").get<std::string>()) << c.name;
  }
}

// Rows end at different steps (a stop string, limits of 1 and 2 tokens, the full answer), in one
// batch: every answer is the one the engine gives without the lookahead.
TEST_P(OverlapDecode, RowsThatStopAtDifferentStepsKeepTheirAnswers) {
  const auto cases = test::load_network_cases(GetParam());
  ASSERT_GE(cases.size(), 2u);
  auto build = [&] {
    std::vector<CaseRequest> out;
    for (size_t i = 0; i < cases.size(); ++i) {
      CaseRequest r = case_request(cases[i]);
      switch (i % 4) {
        case 0: r.request.sampling.stop_strings = {stop_in_middle_of(cases[i].info.at("greedy_text"))}; break;
        case 1: r.request.sampling.max_new_tokens = 1; break;
        case 2: r.request.sampling.max_new_tokens = 2; break;
        default: break;
      }
      out.push_back(std::move(r));
    }
    return out;
  };
  auto answers = [&](bool overlap) {
    auto engine = make_engine(GetParam(), overlap);
    auto requests = build();
    std::vector<std::future<Result>> futures;
    for (auto& r : requests) futures.push_back(engine->submit(std::move(r.request)).result);
    std::vector<Result> results;
    for (auto& f : futures) results.push_back(f.get());
    return results;
  };
  const std::vector<Result> plain = answers(false), ahead = answers(true);
  ASSERT_EQ(plain.size(), ahead.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(ahead[i].status, Status::kAnswered) << cases[i].name << ": " << ahead[i].error;
    EXPECT_EQ(ahead[i].token_ids, plain[i].token_ids) << cases[i].name;
    EXPECT_EQ(ahead[i].text, plain[i].text) << cases[i].name;
    EXPECT_EQ(ahead[i].finish_reason, plain[i].finish_reason) << cases[i].name;
  }
  EXPECT_EQ(ahead[0].finish_reason, "stop_string");
  EXPECT_EQ(ahead[1].token_ids.size(), 1u);
  if (ahead.size() > 2) {
    EXPECT_EQ(ahead[2].token_ids.size(), 2u);
  }
}

TEST_P(OverlapDecode, SeededSamplingIsUnchanged) {
  auto sampled_answer = [&](bool overlap) {
    auto engine = make_engine(GetParam(), overlap);
    CaseRequest r = case_request(test::load_network_cases(GetParam())[0]);
    r.request.sampling.temperature = 0.9;
    r.request.sampling.top_k = 40;
    r.request.sampling.repetition_penalty = 1.1;
    r.request.sampling.seed = 77;
    r.request.sampling.max_new_tokens = 12;
    return engine->submit(std::move(r.request)).result.get();
  };
  const Result plain = sampled_answer(false), ahead = sampled_answer(true);
  ASSERT_EQ(ahead.status, Status::kAnswered) << ahead.error;
  EXPECT_EQ(ahead.token_ids, plain.token_ids);
}

// Left unset, the lookahead is off on the CPU (on for CUDA): a sequence that stops at a stop string
// costs no dropped step there. Counted by the decode forwards of one such request.
TEST_P(OverlapDecode, UnsetMeansOffOnTheCpu) {
  const auto decode_forwards = [&](std::optional<bool> overlap) {
    auto engine = make_engine(GetParam(), overlap);
    const auto c = test::load_network_cases(GetParam())[0];
    CaseRequest r = case_request(c);
    r.request.sampling.stop_strings = {stop_in_middle_of(c.info.at("greedy_text"))};
    const Result result = engine->submit(std::move(r.request)).result.get();
    EXPECT_EQ(result.finish_reason, "stop_string") << result.error;
    return engine->stats().decode_forwards;
  };
  const uint64_t unset = decode_forwards(std::nullopt), off = decode_forwards(false), on = decode_forwards(true);
  EXPECT_EQ(unset, off);
  EXPECT_EQ(on, off + 1) << "with the lookahead the step after the stop is computed and dropped";
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, OverlapDecode, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "tiny-a" ? "TinyA" : "TinyB"; });

// A request admitted while another runs joins the queued steps, and a request cancelled from its
// streaming callback ends cancelled without disturbing the other.
TEST(OverlapDecodeApi, LateJoinAndCancellation) {
  auto engine = make_engine("tiny-a", true);
  const auto cases = test::load_network_cases("tiny-a");
  const NetworkCase* text_only = nullptr;
  for (const auto& c : cases)
    if (c.name == "text_only") text_only = &c;
  ASSERT_NE(text_only, nullptr);

  std::promise<Submission> late;
  std::atomic<bool> submitted{false};
  CaseRequest b = case_request(*text_only);
  b.request.sampling.max_new_tokens = 3;
  CaseRequest a = case_request(cases[0]);
  a.request.sampling.max_new_tokens = 40;
  a.request.sampling.ignore_eos = true;
  a.request.on_partial = [&](RequestId, std::string_view) {
    if (!submitted.exchange(true)) late.set_value(engine->submit(std::move(b.request)));
  };
  const Result first = engine->submit(std::move(a.request)).result.get();
  const Result second = late.get_future().get().result.get();
  ASSERT_EQ(first.status, Status::kAnswered) << first.error;
  ASSERT_EQ(second.status, Status::kAnswered) << second.error;
  EXPECT_EQ(first.token_ids.size(), 40u);
  const auto want = ids32(text_only->t.at("greedy_ids"));
  EXPECT_EQ(second.token_ids, std::vector<int32_t>(want.begin(), want.begin() + 3));

  CaseRequest c = case_request(cases[0]);
  c.request.sampling.max_new_tokens = 20;
  std::atomic<int> pieces{0};
  c.request.on_partial = [&](RequestId rid, std::string_view) {
    if (++pieces == 3) {
      EXPECT_TRUE(engine->cancel(rid));
    }
  };
  CaseRequest d = case_request(*text_only);
  auto cancelled = engine->submit(std::move(c.request));
  auto other = engine->submit(std::move(d.request));
  const Result gone = cancelled.result.get();
  const Result kept = other.result.get();
  EXPECT_EQ(gone.status, Status::kCancelled);
  EXPECT_LT(gone.token_ids.size(), 20u);
  ASSERT_EQ(kept.status, Status::kAnswered) << kept.error;
  EXPECT_EQ(kept.token_ids, want);
}

}  // namespace
}  // namespace qwenvl
