// The engine API on a CUDA device: requests built from raw frames give transformers' greedy ids
// (fixture models in fp32: the GPU path, sampling on the GPU), and so do requests prefilled inside
// the decode steps of another; a request that runs the device out of memory fails with that reason,
// gives its KV blocks back, and the engine keeps answering (and a burst of large frames at real
// width under a small KV budget: each ends answered or failed with the reason); constrained rows
// (json_schema, choices) give the CPU engine's greedy ids with overlap on and off; device names the
// machine cannot serve fail at creation, saying why.
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "../nn/network_reference.h"
#include "../runtime/late_join.h"
#include "gpu_test_util.h"
#include "qwenvl/engine.h"

namespace qwenvl {
namespace {

using test::CaseRequest;
using test::NetworkCase;
using test::case_request;
using test::ids32;

std::unique_ptr<Engine> make_gpu_engine(const std::string& model, int64_t max_context = 4096) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / model).string();
  o.device = "cuda";
  o.dtype = "float32";
  o.max_batch = 8;
  o.max_context = max_context;
  return Engine::create(o);
}


class GpuEngine : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { QWENVL_SKIP_WITHOUT_GPU(); }
};

TEST_P(GpuEngine, RawFramesGiveTransformersIdsConcurrently) {
  auto engine = make_gpu_engine(GetParam());
  const auto cases = test::load_network_cases(GetParam());
  std::vector<CaseRequest> requests;
  std::vector<std::future<Result>> futures;
  for (const auto& c : cases) requests.push_back(case_request(c));
  const auto before = kernels::dispatch_counts();
  for (auto& r : requests) futures.push_back(engine->submit(std::move(r.request)).result);
  for (size_t i = 0; i < cases.size(); ++i) {
    Result result = futures[i].get();
    ASSERT_EQ(result.status, Status::kAnswered) << cases[i].name << ": " << result.error;
    EXPECT_EQ(result.token_ids, ids32(cases[i].t.at("greedy_ids"))) << cases[i].name;
    EXPECT_EQ(result.text, cases[i].info.at("greedy_text").get<std::string>()) << cases[i].name;
  }
  const auto calls = kernels::dispatch_counts().since(before);
  EXPECT_GT(calls(kernels::KernelOp::kSample, kernels::DispatchPath::kCudaKernel), 0u) << "tokens picked on the GPU";
  for (int op = 0; op < kernels::kNumKernelOps; ++op)
    EXPECT_EQ(calls(kernels::KernelOp(op), kernels::DispatchPath::kCpuReference), 0u)
        << kernels::kernel_op_name(kernels::KernelOp(op)) << " ran on the CPU";
}

// Requests submitted while another decodes (from its streaming callback) are prefilled inside its
// decode steps (2048 prompt tokens a step, and one prompt a step): transformers' greedy ids, every
// kernel on the GPU (the mixed step's varlen and paged attention included).
TEST_P(GpuEngine, LateJoinsRideInDecodeStepsAndGiveTransformersIds) {
  const auto cases = test::load_network_cases(GetParam());
  for (const int64_t budget : {int64_t{2048}, int64_t{1}}) {
    SCOPED_TRACE(std::to_string(budget) + " prompt tokens a step");
    EngineOptions o;
    o.model_dir = (test::fixtures_dir() / "models" / GetParam()).string();
    o.device = "cuda";
    o.dtype = "float32";
    o.max_batch = 8;
    o.max_context = 4096;
    o.prefill_tokens_per_step = budget;
    const auto engine = Engine::create(o);
    CaseRequest first = case_request(cases[0]);
    first.request.sampling.max_new_tokens = 24;
    first.request.sampling.ignore_eos = true;
    std::vector<CaseRequest> late;
    for (const auto& c : cases) late.push_back(case_request(c));
    const auto before = kernels::dispatch_counts();
    const test::LateJoin joined = test::run_late_join(*engine, std::move(first), std::move(late));
    ASSERT_EQ(joined.first.status, Status::kAnswered) << joined.first.error;
    ASSERT_EQ(joined.late.size(), cases.size());
    for (size_t i = 0; i < joined.late.size(); ++i) {
      const Result& r = joined.late[i];
      ASSERT_EQ(r.status, Status::kAnswered) << cases[i].name << ": " << r.error;
      EXPECT_EQ(r.token_ids, ids32(cases[i].t.at("greedy_ids"))) << cases[i].name;
    }
    EXPECT_GT(engine->stats().mixed_forwards, 0u);
    const auto calls = kernels::dispatch_counts().since(before);
    for (int op = 0; op < kernels::kNumKernelOps; ++op)
      EXPECT_EQ(calls(kernels::KernelOp(op), kernels::DispatchPath::kCpuReference), 0u)
          << kernels::kernel_op_name(kernels::KernelOp(op)) << " ran on the CPU";
  }
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, GpuEngine, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "tiny-a" ? "TinyA" : "TinyB"; });

// Caps what the caching allocator may take on device 0 for the test's duration.
struct MemoryCap {
  explicit MemoryCap(double bytes) {
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    c10::cuda::CUDACachingAllocator::emptyCache();
    c10::cuda::CUDACachingAllocator::setMemoryFraction(bytes / static_cast<double>(total_bytes), 0);
  }
  ~MemoryCap() { c10::cuda::CUDACachingAllocator::setMemoryFraction(1.0, 0); }
};

TEST(GpuEngineMemory, OutOfMemoryFailsTheBatchAndTheEngineGoesOn) {
  QWENVL_SKIP_WITHOUT_GPU();
  auto engine = make_gpu_engine("tiny-a", /*max_context=*/16384);
  const auto cases = test::load_network_cases("tiny-a");
  const NetworkCase* one_image = nullptr;
  for (const auto& c : cases)
    if (c.name == "one_image") one_image = &c;
  ASSERT_NE(one_image, nullptr);
  {
    MemoryCap cap(1024.0 * 1024 * 1024);
    // ~20,000 patches: a full-attention block's fp32 scores alone need 1.6 GB.
    std::vector<uint8_t> pixels(2000 * 2000 * 3);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
    Request absurd;
    absurd.images.push_back(FrameView::packed(PixelFormat::kRGB, 2000, 2000, pixels.data()));
    absurd.prompt = "Describe this image.";
    absurd.max_pixels = 2000 * 2000;
    absurd.sampling.max_new_tokens = 4;
    Result result = engine->submit(std::move(absurd)).result.get();
    EXPECT_EQ(result.status, Status::kFailed);
    EXPECT_NE(result.error.find("out of memory"), std::string::npos) << result.error;
  }
  // The engine still answers, with every KV block available again.
  auto r = case_request(*one_image);
  Result result = engine->submit(std::move(r.request)).result.get();
  ASSERT_EQ(result.status, Status::kAnswered) << result.error;
  EXPECT_EQ(result.token_ids, ids32(one_image->t.at("greedy_ids")));
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.answered, 1u);
}

// A burst of large frames into a model at real width (QWENVL_BURST_MODEL: a 7B directory, random
// weights will do) with a small KV budget and the caching allocator capped 3 GiB above what the
// engine holds once warm: prefills of several frames run out of memory and are retried in halves,
// a frame that runs out alone fails saying so, frames over the whole KV budget fail saying that (or
// out of memory, should preparing them run out first); the engine then answers again with every KV
// block back. Run by scripts/device/soak_and_oom.sh.
TEST(GpuEngineMemory, BurstOfLargeFramesUnderASmallKvBudgetEndsEachWithAReasonAndTheEngineGoesOn) {
  QWENVL_SKIP_WITHOUT_GPU();
  const char* model = std::getenv("QWENVL_BURST_MODEL");
  if (model == nullptr) GTEST_SKIP() << "QWENVL_BURST_MODEL (a model directory at real width) is not set";
  EngineOptions o;
  o.model_dir = model;
  o.device = "cuda";
  o.max_batch = 16;
  o.max_context = 32768;
  o.kv_cache_bytes = int64_t{1} << 30;  // 7B: about 18,700 tokens, 4 to 6 frames of 1920x1080
  auto engine = Engine::create(o);
  const auto frame = [](int width, int height) {
    std::vector<uint8_t> pixels(static_cast<size_t>(width) * height * 3);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
    return pixels;
  };
  const auto request = [](const std::vector<uint8_t>& pixels, int width, int height) {
    Request r;
    r.images.push_back(FrameView::packed(PixelFormat::kRGB, width, height, pixels.data()));
    r.prompt = "Describe this image.";
    r.max_pixels = int64_t{width} * height;
    r.sampling.max_new_tokens = 8;
    r.sampling.ignore_eos = true;
    return r;
  };
  const std::vector<uint8_t> small = frame(640, 480), hd = frame(1920, 1080), uhd = frame(3840, 2160),
                             huge = frame(4096, 4096);
  ASSERT_EQ(engine->submit(request(small, 640, 480)).result.get().status, Status::kAnswered);  // warm

  int answered = 0, out_of_memory = 0, over_kv = 0;
  uint64_t splits = 0;
  {
    const auto stat = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    c10::cuda::CUDACachingAllocator::emptyCache();
    const double held = static_cast<double>(c10::cuda::CUDACachingAllocator::getDeviceStats(0).reserved_bytes[stat].current);
    MemoryCap cap(held + 3.0 * 1024 * 1024 * 1024);  // queued frames, prepared on the device, count too
    std::vector<Submission> burst;
    for (int i = 0; i < 12; ++i) burst.push_back(engine->submit(request(hd, 1920, 1080)));
    for (int i = 0; i < 3; ++i) burst.push_back(engine->submit(request(uhd, 3840, 2160)));
    for (int i = 0; i < 2; ++i) burst.push_back(engine->submit(request(huge, 4096, 4096)));  // ~21,500 tokens
    for (size_t i = 0; i < burst.size(); ++i) {
      const Result r = burst[i].result.get();
      if (r.status == Status::kAnswered) {
        ++answered;
      } else {
        EXPECT_EQ(r.status, Status::kFailed) << "request " << i;
        const bool memory = r.error.find("out of memory") != std::string::npos;
        const bool kv = r.error.find("KV blocks") != std::string::npos;
        EXPECT_TRUE(memory || kv) << "request " << i << ": " << r.error;
        out_of_memory += memory;
        over_kv += kv;
      }
      if (i >= 15) {
        EXPECT_EQ(r.status, Status::kFailed) << "a 4096x4096 frame is over the whole KV budget";
      }
    }
    splits = engine->stats().split_prefills;
  }
  std::printf("[burst] 12 x 1920x1080, 3 x 3840x2160, 2 x 4096x4096 under a 1 GiB KV budget and 3 GiB of headroom: "
              "%d answered, %d failed out of memory, %d failed over the KV budget; %llu prefills split\n",
              answered, out_of_memory, over_kv, static_cast<unsigned long long>(splits));
  EXPECT_GT(splits + static_cast<uint64_t>(out_of_memory), 0u) << "the cap left room for everything: the out-of-memory path was not reached";
  // The engine answers again, with every KV block available.
  ASSERT_EQ(engine->submit(request(small, 640, 480)).result.get().status, Status::kAnswered);
  for (int i = 0; i < 500 && engine->stats().kv_blocks_used != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

// Constrained rows on the GPU (masks filled on the host, applied by kernels::apply_token_bitmask)
// beside unconstrained ones in one batch: greedy ids equal to the CPU engine's, with overlap_decode
// on and off, and each constrained answer a document of its schema or one of its choices.
TEST(GpuEngineConstrained, GreedyIdsAreTheCpuEnginesWithOverlapOnAndOff) {
  QWENVL_SKIP_WITHOUT_GPU();
  const std::string schema =
      R"({"type":"object","properties":{"people":{"type":"integer","minimum":0,"maximum":20},"vehicle":{"type":"boolean"}},"required":["people","vehicle"]})";
  const std::vector<std::string> choices = {"yes", "no", "a person, walking"};
  const auto ask_all = [&](const std::string& device, bool overlap) {
    EngineOptions o;
    o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
    o.device = device;
    o.dtype = "float32";
    o.max_batch = 8;
    o.max_context = 1024;
    o.overlap_decode = overlap;
    const auto engine = Engine::create(o);
    std::vector<std::future<Result>> futures;
    for (int i = 0; i < 6; ++i) {
      Request r;
      r.prompt = "Question " + std::to_string(i) + ": how many people, and is there a vehicle?";
      r.sampling.max_new_tokens = 40;
      r.sampling.temperature = 0.0;
      if (i % 3 == 0) r.sampling.json_schema = schema;
      if (i % 3 == 1) r.sampling.choices = choices;
      futures.push_back(engine->submit(std::move(r)).result);
    }
    std::vector<Result> results;
    for (auto& f : futures) results.push_back(f.get());
    return results;
  };
  const std::vector<Result> cpu = ask_all("cpu", false);
  for (const bool overlap : {true, false}) {
    const auto before = kernels::dispatch_counts();
    const std::vector<Result> gpu = ask_all("cuda", overlap);
    const auto calls = kernels::dispatch_counts().since(before);
    EXPECT_EQ(calls(kernels::KernelOp::kSample, kernels::DispatchPath::kCpuReference), 0u) << "tokens picked on the CPU";
    for (size_t i = 0; i < gpu.size(); ++i) {
      SCOPED_TRACE("request " + std::to_string(i) + (overlap ? ", overlap on" : ", overlap off"));
      ASSERT_EQ(gpu[i].status, Status::kAnswered) << gpu[i].error;
      EXPECT_EQ(gpu[i].token_ids, cpu[i].token_ids) << gpu[i].text << " | CPU: " << cpu[i].text;
      if (i % 3 == 1) {
        EXPECT_NE(std::find(choices.begin(), choices.end(), gpu[i].text), choices.end()) << gpu[i].text;
      }
      if (i % 3 == 0 && !gpu[i].incomplete) {
        EXPECT_TRUE(nlohmann::json::accept(gpu[i].text)) << gpu[i].text;
      }
    }
  }
}

TEST(GpuEngineCreate, DeviceThatIsNotThereFailsSayingWhy) {
  QWENVL_SKIP_WITHOUT_GPU();
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.device = "cuda:99";
  try {
    Engine::create(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("visible"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qwenvl
