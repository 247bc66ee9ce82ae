// The engine API on a CUDA device: requests built from raw frames give transformers' greedy ids
// (fixture models in fp32: the GPU path, sampling on the GPU); a request that runs the device out of
// memory fails with that reason, gives its KV blocks back, and the engine keeps answering; device
// names the machine cannot serve fail at creation, saying why.
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../nn/network_reference.h"
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
