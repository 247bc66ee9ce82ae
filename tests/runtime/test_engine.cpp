// The engine API end to end on the CPU: requests built from raw frames go through our frame
// conversion, chat template, tokenizer, preprocessing and network, and must give transformers'
// greedy ids and text; plus the API's promises: every request ends exactly once (callback and
// future agree), cancellation, deadlines, limits that fail at once, streaming, stop strings,
// seeded sampling independent of the batch, and submissions from many threads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../error_of.h"
#include "../nn/network_reference.h"
#include "qwenvl/engine.h"
#include "tokenizer/utf8.h"

namespace qwenvl {
namespace {

using namespace std::chrono_literals;
using test::CaseRequest;
using test::NetworkCase;
using test::case_request;
using test::ids32;

std::unique_ptr<Engine> make_engine(const std::string& model, int max_batch = 8, int64_t max_context = 4096) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / model).string();
  o.max_batch = max_batch;
  o.max_context = max_context;
  return Engine::create(o);
}

class EngineParity : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineParity, RawFramesGiveTransformersIdsAndText) {
  auto engine = make_engine(GetParam());
  for (const auto& c : test::load_network_cases(GetParam())) {
    auto r = case_request(c);
    Result result = engine->submit(std::move(r.request)).result.get();
    ASSERT_EQ(result.status, Status::kAnswered) << c.name << ": " << result.error;
    EXPECT_EQ(result.token_ids, ids32(c.t.at("greedy_ids"))) << c.name;
    EXPECT_EQ(result.text, c.info.at("greedy_text").get<std::string>()) << c.name;
    EXPECT_EQ(result.prompt_tokens, c.t.at("input_ids").numel()) << c.name;
    EXPECT_GT(result.total_ms, 0);
    EXPECT_LE(result.ttft_ms, result.total_ms);
  }
}

TEST_P(EngineParity, ConcurrentMixedRequestsAllMatch) {
  auto engine = make_engine(GetParam());
  const auto cases = test::load_network_cases(GetParam());
  std::vector<std::future<Result>> futures(cases.size() * 2);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < futures.size(); ++i)
    threads.emplace_back([&, i] {
      auto r = case_request(cases[i % cases.size()]);
      futures[i] = engine->submit(std::move(r.request)).result;
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < futures.size(); ++i) {
    Result result = futures[i].get();
    const auto& c = cases[i % cases.size()];
    ASSERT_EQ(result.status, Status::kAnswered) << c.name << ": " << result.error;
    EXPECT_EQ(result.token_ids, ids32(c.t.at("greedy_ids"))) << c.name << " among others";
  }
  const auto stats = engine->stats();
  EXPECT_EQ(stats.answered, futures.size());
  EXPECT_LT(stats.prefill_forwards, futures.size()) << "requests waiting together must share a prefill";
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, EngineParity, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "tiny-a" ? "TinyA" : "TinyB"; });

class EngineApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    engine_ = make_engine("tiny-a").release();
    cases_ = new std::vector<NetworkCase>(test::load_network_cases("tiny-a"));
  }
  static void TearDownTestSuite() {
    delete engine_;
    delete cases_;
  }
  static const NetworkCase& one_image() { return (*cases_)[0]; }
  static Engine* engine_;
  static std::vector<NetworkCase>* cases_;
};
Engine* EngineApi::engine_ = nullptr;
std::vector<NetworkCase>* EngineApi::cases_ = nullptr;

TEST_F(EngineApi, CallbackAndFutureAgreeExactlyOnce) {
  std::mutex m;
  std::map<RequestId, std::vector<Result>> seen;
  std::vector<Submission> subs;
  for (int i = 0; i < 6; ++i) {
    auto r = case_request(one_image());
    r.request.sampling.max_new_tokens = 4;
    r.request.on_complete = [&](const Result& res) {
      std::lock_guard<std::mutex> lock(m);
      seen[res.id].push_back(res);
    };
    subs.push_back(engine_->submit(std::move(r.request)));
  }
  for (auto& s : subs) {
    Result res = s.result.get();
    std::lock_guard<std::mutex> lock(m);
    ASSERT_EQ(seen[s.id].size(), 1u) << "request " << s.id;
    EXPECT_EQ(seen[s.id][0].token_ids, res.token_ids);
    EXPECT_EQ(res.status, Status::kAnswered);
    EXPECT_EQ(res.token_ids.size(), 4u);
    EXPECT_EQ(res.finish_reason, "length");
  }
}

// Continuous batching: a request that becomes ready while another runs joins its decode steps (it
// does not wait for the running one to end), and still gives transformers' ids.
TEST_F(EngineApi, LateRequestJoinsTheRunningBatch) {
  const NetworkCase* text_only = nullptr;
  for (const auto& c : *cases_)
    if (c.name == "text_only") text_only = &c;
  ASSERT_NE(text_only, nullptr);
  const auto before = engine_->stats();
  std::mutex m;
  std::vector<std::string> order;
  std::promise<Submission> late;
  std::atomic<bool> submitted{false};
  auto b = case_request(*text_only);
  b.request.sampling.max_new_tokens = 3;
  b.request.on_complete = [&](const Result&) {
    std::lock_guard<std::mutex> lock(m);
    order.push_back("late");
  };
  auto a = case_request(one_image());
  a.request.sampling.max_new_tokens = 120;
  a.request.sampling.ignore_eos = true;
  a.request.on_partial = [&](RequestId, std::string_view) {
    if (!submitted.exchange(true)) late.set_value(engine_->submit(std::move(b.request)));  // from the engine's thread
  };
  a.request.on_complete = [&](const Result&) {
    std::lock_guard<std::mutex> lock(m);
    order.push_back("first");
  };
  Result first = engine_->submit(std::move(a.request)).result.get();
  Result second = late.get_future().get().result.get();
  ASSERT_EQ(first.status, Status::kAnswered) << first.error;
  ASSERT_EQ(second.status, Status::kAnswered) << second.error;
  EXPECT_EQ(first.token_ids.size(), 120u);
  const auto want = ids32(text_only->t.at("greedy_ids"));
  EXPECT_EQ(second.token_ids, std::vector<int32_t>(want.begin(), want.begin() + 3)) << "ids of the request that joined";
  EXPECT_EQ(order, (std::vector<std::string>{"late", "first"})) << "the late request waited for the running one";
  const auto after = engine_->stats();
  EXPECT_EQ(after.prefill_forwards - before.prefill_forwards, 2u);
  EXPECT_EQ(after.decode_forwards - before.decode_forwards, 119u) << "the late request's steps were not shared";
  EXPECT_EQ(after.decode_rows - before.decode_rows, 121u) << "119 steps of the first, 2 of the late one beside them";
}

// EngineStats counts the KV blocks a running sequence holds (its whole answer's, from admission)
// and gives them back when it ends.
TEST_F(EngineApi, StatsCountTheKvBlocksOfRunningSequences) {
  constexpr int kNewTokens = 40;
  const int64_t prompt_tokens = one_image().t.at("input_ids").numel();
  const int64_t block = engine_->options().kv_block_size;
  std::promise<EngineStats> during;
  std::atomic<bool> seen{false};
  auto r = case_request(one_image());
  r.request.sampling.max_new_tokens = kNewTokens;
  r.request.sampling.ignore_eos = true;
  r.request.on_partial = [&](RequestId, std::string_view) {
    if (!seen.exchange(true)) during.set_value(engine_->stats());
  };
  ASSERT_EQ(engine_->submit(std::move(r.request)).result.get().status, Status::kAnswered);
  const EngineStats running = during.get_future().get();
  EXPECT_EQ(running.kv_blocks_used, (prompt_tokens + kNewTokens + block - 1) / block);
  EXPECT_GE(running.kv_blocks_total, running.kv_blocks_used);
  EngineStats after = engine_->stats();
  for (int i = 0; i < 200 && after.kv_blocks_used != 0; ++i) {  // retired just after its answer
    std::this_thread::sleep_for(10ms);
    after = engine_->stats();
  }
  EXPECT_EQ(after.kv_blocks_used, 0);
  EXPECT_EQ(after.kv_blocks_total, running.kv_blocks_total);
}

TEST_F(EngineApi, StreamedTextIsTheAnswerInWholeCharacters) {
  std::string streamed;
  int pieces = 0;
  auto r = case_request(one_image());
  r.request.on_partial = [&](RequestId, std::string_view piece) {
    EXPECT_TRUE(model::utf8_is_valid(piece)) << "a streamed piece splits a character";
    streamed += piece;
    ++pieces;
  };
  Result res = engine_->submit(std::move(r.request)).result.get();
  ASSERT_EQ(res.status, Status::kAnswered);
  EXPECT_EQ(streamed, res.text);
  EXPECT_GT(pieces, 1);
}

TEST_F(EngineApi, StopStringEndsTheAnswerBeforeIt) {
  const std::string full = one_image().info.at("greedy_text").get<std::string>();
  ASSERT_GT(full.size(), 12u);
  // A stop string taken from the middle of the known answer, on character boundaries.
  size_t from = full.size() / 2;
  while (from > 0 && (static_cast<unsigned char>(full[from]) & 0xC0) == 0x80) --from;
  size_t to = from + 1;
  while (to < full.size() && (static_cast<unsigned char>(full[to]) & 0xC0) == 0x80) ++to;
  const std::string stop = full.substr(from, to - from);
  std::string streamed;
  auto r = case_request(one_image());
  r.request.sampling.stop_strings = {stop};
  r.request.on_partial = [&](RequestId, std::string_view piece) { streamed += piece; };
  Result res = engine_->submit(std::move(r.request)).result.get();
  ASSERT_EQ(res.status, Status::kAnswered);
  EXPECT_EQ(res.finish_reason, "stop_string");
  EXPECT_EQ(res.stop_string, stop);
  EXPECT_EQ(res.text, full.substr(0, full.find(stop)));
  EXPECT_EQ(streamed, res.text) << "text a stop string claims must never be streamed";
}

TEST_F(EngineApi, CancelFromThePartialCallback) {
  auto r = case_request(one_image());
  r.request.sampling.max_new_tokens = 20;  // the reference shows no EOS in the first 20 tokens
  std::atomic<RequestId> id{0};
  std::atomic<int> cancels{0};
  r.request.on_partial = [&](RequestId rid, std::string_view) {
    if (cancels++ == 0) {
      EXPECT_TRUE(engine_->cancel(rid));
    }
    id = rid;
  };
  Result res = engine_->submit(std::move(r.request)).result.get();
  EXPECT_EQ(res.status, Status::kCancelled);
  EXPECT_LT(res.token_ids.size(), 20u);
  EXPECT_FALSE(engine_->cancel(res.id)) << "an ended request cannot be cancelled";
}

TEST_F(EngineApi, PastDeadlineExpires) {
  auto r = case_request(one_image());
  r.request.deadline = std::chrono::steady_clock::now() - 1ms;
  Result res = engine_->submit(std::move(r.request)).result.get();
  EXPECT_EQ(res.status, Status::kExpired);
  EXPECT_FALSE(res.error.empty());
}

TEST_F(EngineApi, RequestsThatCanNeverFitFailAtOnceSayingWhy) {
  auto small = make_engine("tiny-a", 2, /*max_context=*/40);
  auto r = case_request(one_image());  // a prompt of 133 tokens
  Result res = small->submit(std::move(r.request)).result.get();
  EXPECT_EQ(res.status, Status::kFailed);
  EXPECT_NE(res.error.find("max_context"), std::string::npos) << res.error;

  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.kv_cache_bytes = 64 * 1024;  // a few blocks only
  auto tiny_cache = Engine::create(o);
  auto r2 = case_request(one_image());
  res = tiny_cache->submit(std::move(r2.request)).result.get();
  EXPECT_EQ(res.status, Status::kFailed);
  EXPECT_NE(res.error.find("KV"), std::string::npos) << res.error;
}

TEST_F(EngineApi, BadInputFailsWithAReason) {
  Request bad;
  bad.prompt = "hello";
  FrameView f;
  f.format = PixelFormat::kNV12;
  f.width = 16;
  f.height = 16;  // planes left null
  bad.images.push_back(f);
  Result res = engine_->submit(std::move(bad)).result.get();
  EXPECT_EQ(res.status, Status::kFailed);
  EXPECT_NE(res.error.find("image 1"), std::string::npos) << res.error;

  Request bad_sampling;
  bad_sampling.prompt = "hello";
  bad_sampling.sampling.top_p = 1.5;
  res = engine_->submit(std::move(bad_sampling)).result.get();
  EXPECT_EQ(res.status, Status::kFailed);
  EXPECT_NE(res.error.find("top_p"), std::string::npos) << res.error;
}

// A frame in CUDA memory sent to an engine on the CPU fails at once with the reason, and the
// engine has dropped its hold on the caller's buffer (the release callback ran) by the time the
// request has ended.
TEST_F(EngineApi, CudaFrameOnTheCpuFailsSayingWhyAndIsReleased) {
  static const uint8_t pixels[16 * 16 * 3] = {};
  std::atomic<int> released{0};
  Request request;
  request.prompt = "hello";
  FrameView frame = FrameView::packed(PixelFormat::kRGB, 16, 16, pixels);
  frame.memory = FrameMemory::kCuda;
  frame.cuda_device = 0;
  frame.keep_alive = release_callback([&] { ++released; });
  request.images.push_back(std::move(frame));
  Result res = engine_->submit(std::move(request)).result.get();
  EXPECT_EQ(res.status, Status::kFailed);
  EXPECT_NE(res.error.find("image 1"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find("CUDA memory"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find("cpu"), std::string::npos) << res.error;
  EXPECT_EQ(released.load(), 1);
}

TEST_F(EngineApi, SeededSamplingIgnoresWhatSharesTheBatch) {
  auto sampled = [&](const NetworkCase& c) {
    auto r = case_request(c);
    r.request.sampling.temperature = 0.9;
    r.request.sampling.top_k = 40;
    r.request.sampling.seed = 1234;
    r.request.sampling.max_new_tokens = 12;
    return r;
  };
  auto alone = sampled(one_image());
  const Result reference = engine_->submit(std::move(alone.request)).result.get();
  ASSERT_EQ(reference.status, Status::kAnswered);
  std::vector<std::future<Result>> others;
  std::vector<CaseRequest> keep;
  for (const auto& c : *cases_) {
    keep.push_back(case_request(c));
    others.push_back(engine_->submit(std::move(keep.back().request)).result);
  }
  auto again = sampled(one_image());
  Result with_company = engine_->submit(std::move(again.request)).result.get();
  for (auto& f : others) f.get();
  EXPECT_EQ(with_company.token_ids, reference.token_ids);
}

TEST_F(EngineApi, SubmitsFromManyThreadsEachEndOnce) {
  std::atomic<int> completions{0};
  std::vector<std::future<Result>> futures(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        auto r = case_request((*cases_)[(t + i) % cases_->size()]);
        r.request.sampling.max_new_tokens = 3;
        r.request.on_complete = [&](const Result&) { ++completions; };
        futures[t * 4 + i] = engine_->submit(std::move(r.request)).result;
      }
    });
  for (auto& t : threads) t.join();
  std::set<RequestId> ids;
  for (auto& f : futures) {
    Result res = f.get();
    EXPECT_EQ(res.status, Status::kAnswered) << res.error;
    ids.insert(res.id);
  }
  EXPECT_EQ(ids.size(), futures.size());
  EXPECT_EQ(completions.load(), 16);
}

// time_phases: the stats split the work into vision, prefill and decode time; off, all stay 0.
TEST(EnginePhases, TimedOnlyWhenAsked) {
  const auto cases = test::load_network_cases("tiny-a");
  for (bool timed : {false, true}) {
    EngineOptions o;
    o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
    o.time_phases = timed;
    auto engine = Engine::create(o);
    auto r = case_request(cases[0]);  // one image
    r.request.sampling.max_new_tokens = 4;
    ASSERT_EQ(engine->submit(std::move(r.request)).result.get().status, Status::kAnswered);
    const auto stats = engine->stats();
    if (timed) {
      EXPECT_GT(stats.vision_ms, 0);
      EXPECT_GT(stats.prefill_ms, 0);
      EXPECT_GT(stats.decode_ms, 0);
    } else {
      EXPECT_EQ(stats.vision_ms + stats.prefill_ms + stats.decode_ms, 0);
    }
  }
}

// Every decode step is timed by part, without time_phases: one per token picked.
TEST(EnginePhases, DecodeStepsAreTimedByPartAlways) {
  const auto cases = test::load_network_cases("tiny-a");
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  auto engine = Engine::create(o);
  auto r = case_request(cases[0]);
  r.request.sampling.max_new_tokens = 4;
  r.request.sampling.ignore_eos = true;
  ASSERT_EQ(engine->submit(std::move(r.request)).result.get().status, Status::kAnswered);
  // The answer is delivered inside the last step, which is accounted when it ends, just after.
  DecodeHostTimes t = engine->stats().decode_host;
  for (int i = 0; i < 1000 && t.steady_steps < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    t = engine->stats().decode_host;
  }
  EXPECT_EQ(t.steps, 4u) << "one step per token: the first from the prefill's logits";
  EXPECT_EQ(t.steady_steps, 3u) << "every step but the one after the prefill";
  EXPECT_GT(t.steady_ms, 0);
  for (double part : {t.mask_fill_ms, t.launch_ms, t.wait_ms, t.grammar_accept_ms, t.tokens_ms}) EXPECT_GE(part, 0);
  EXPECT_GT(t.launch_ms + t.wait_ms, 0) << "the CPU's steps run their forwards in these parts";
}

TEST(EngineCreate, ClearErrorsForBadModelDirectories) {
  EngineOptions o;
  o.model_dir = "/nonexistent/model";
  try {
    Engine::create(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model"), std::string::npos) << e.what();
  }
  o.model_dir = test::fixtures_dir().string();  // a directory, but no model in it
  EXPECT_THROW(Engine::create(o), Error);
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.device = "tpu";
  EXPECT_THROW(Engine::create(o), Error);
}

// EngineOptions::devices wins over device; what the engine cannot run yet is refused with the reason.
TEST(EngineCreate, DevicesWinOverDeviceAndSayWhatIsNotRunYet) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.device = "tpu";
  o.devices = "cpu";
  EXPECT_EQ(Engine::create(o)->stats().answered, 0u);
  o.devices = "cpu,cpu";  // auto plans replicas here (tests/runtime/replicas/ run them)
  EXPECT_EQ(Engine::create(o)->stats().devices.size(), 2u);
  o.placement = "pipeline";  // tests/runtime/stages/ run it
  EXPECT_EQ(Engine::create(o)->stats().answered, 0u);
  o.placement = "auto";
  o.devices = "cpu=1MiB";
  EXPECT_NE(test::error_of([&] { Engine::create(o); }).find("short"), std::string::npos);
  o.devices = "cpu";
  o.placement = "sideways";
  EXPECT_NE(test::error_of([&] { Engine::create(o); }).find("sideways"), std::string::npos);
}

}  // namespace
}  // namespace qwenvl
