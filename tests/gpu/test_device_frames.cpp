// Frames in CUDA memory (FrameView::memory kCuda, what a GPU video decoder or GStreamer's
// CUDAMemory hands over) on a CUDA device: prepared in place, they give the pixel values of the same
// frame sent from host memory, bit for bit, in every pixel format, padded rows and clips mixing both
// kinds included; the engine answers them with the host frame's ids and lets the caller's buffer go
// once prepared; and what the driver says cannot be read (host memory, strides past the allocation,
// another CUDA context's memory) fails with the reason instead of faulting the device.
#include <ATen/cuda/CUDAContext.h>
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../nn/network_reference.h"
#include "gpu_test_util.h"
#include "preprocessing/image_processor.h"
#include "preprocessing/owned_frame.h"
#include "preprocessing/video_processor.h"
#include "qwenvl/engine.h"
#include "qwenvl/error.h"

namespace qwenvl {
namespace {

using namespace qwenvl::model;

const at::Device kGpu(at::kCUDA, 0);

// A frame of random bytes in host memory, rows padded by `pad` bytes.
struct HostFrame {
  std::vector<std::vector<uint8_t>> planes;
  FrameView view;
};

HostFrame random_frame(PixelFormat format, int w, int h, int pad, std::mt19937& rng) {
  HostFrame f;
  f.view.format = format;
  f.view.width = w;
  f.view.height = h;
  const PlaneGeometry g = plane_geometry(format, w, h);
  for (int p = 0; p < g.count; ++p) {
    std::vector<uint8_t> plane(static_cast<size_t>((g.row_bytes[p] + pad) * g.rows[p]));
    for (auto& b : plane) b = static_cast<uint8_t>(rng());
    f.planes.push_back(std::move(plane));
  }
  for (int p = 0; p < g.count; ++p) {
    f.view.planes[p] = f.planes[p].data();
    f.view.strides[p] = static_cast<int>(g.row_bytes[p] + pad);
  }
  return f;
}

// The same frame in device memory (one allocation per plane, the host frame's strides), through
// libtorch's allocator as a decoder's pool would hold it; `released` counts the release callback.
FrameView on_device(const FrameView& host, std::atomic<int>* released = nullptr) {
  const PlaneGeometry g = plane_geometry(host.format, host.width, host.height);
  auto planes = std::make_shared<std::vector<at::Tensor>>();
  FrameView view = host;
  for (int p = 0; p < g.count; ++p) {
    const int64_t bytes = static_cast<int64_t>(host.strides[p]) * g.rows[p];
    at::Tensor cpu = at::from_blob(const_cast<uint8_t*>(host.planes[p]), {bytes}, at::kByte);
    planes->push_back(cpu.to(kGpu));
    view.planes[p] = planes->back().data_ptr<uint8_t>();
  }
  at::cuda::getCurrentCUDAStream().synchronize();  // the caller's writes are done before submit()
  view.memory = FrameMemory::kCuda;
  view.cuda_device = 0;
  view.keep_alive = release_callback([planes, released] {
    if (released != nullptr) ++*released;
  });
  return view;
}

void expect_same(const VisionInput& got, const VisionInput& want, const std::string& what) {
  EXPECT_EQ(got.grid_thw, want.grid_thw) << what;
  ASSERT_EQ(got.pixel_values.sizes(), want.pixel_values.sizes()) << what;
  EXPECT_TRUE(at::equal(got.pixel_values.cpu().view(at::kInt), want.pixel_values.cpu().view(at::kInt)))
      << what << ": pixel values differ";
}

class DeviceFrames : public ::testing::Test {
 protected:
  void SetUp() override { QWENVL_SKIP_WITHOUT_GPU(); }
};

TEST_F(DeviceFrames, ImagesGiveTheHostFramesPixelValues) {
  std::mt19937 rng(20261206);
  ProcessorConfig config;  // Qwen2.5-VL's values
  config.max_pixels = 200 * 28 * 28;
  for (PixelFormat format : supported_pixel_formats())
    for (const auto& [w, h, pad] : {std::tuple{99, 77, 3}, std::tuple{64, 48, 0}, std::tuple{1025, 579, 64}}) {
      const std::string what = std::string(pixel_format_name(format)) + " " + std::to_string(w) + "x" +
                               std::to_string(h) + " pad " + std::to_string(pad);
      const HostFrame host = random_frame(format, w, h, pad, rng);
      const OwnedFrame from_host = copy_frame(host.view);
      const OwnedFrame from_device = copy_frame(on_device(host.view), kGpu);
      ASSERT_TRUE(from_device.on_device());
      const VisionInput want = preprocess_image(from_host, config, std::nullopt, std::nullopt, kGpu);
      expect_same(preprocess_image(from_device, config, std::nullopt, std::nullopt, kGpu), want, what);
      expect_same(want, preprocess_image(from_host, config, std::nullopt, std::nullopt, at::kCPU), what + " (CPU)");
    }
}

TEST_F(DeviceFrames, ClipsMixingHostAndDeviceFramesGiveTheHostClipsValues) {
  std::mt19937 rng(11);
  ProcessorConfig config;
  config.max_pixels = 100 * 28 * 28;
  std::vector<HostFrame> frames;
  for (int i = 0; i < 5; ++i) frames.push_back(random_frame(i % 2 ? PixelFormat::kNV12 : PixelFormat::kBGRx, 96, 64, 8, rng));
  std::vector<OwnedFrame> host, mixed;
  for (size_t i = 0; i < frames.size(); ++i) {
    host.push_back(copy_frame(frames[i].view));
    mixed.push_back(i % 3 == 1 ? copy_frame(frames[i].view) : copy_frame(on_device(frames[i].view), kGpu));
  }
  expect_same(preprocess_video(mixed, config, {}, kGpu), preprocess_video(host, config, {}, kGpu), "mixed clip");
}

std::string error_of(const FrameView& frame) {
  try {
    copy_frame(frame, kGpu);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST_F(DeviceFrames, HostMemoryCalledDeviceMemoryIsRefused) {
  std::mt19937 rng(3);
  HostFrame host = random_frame(PixelFormat::kRGB, 32, 16, 0, rng);
  FrameView lie = host.view;
  lie.memory = FrameMemory::kCuda;
  lie.cuda_device = 0;
  EXPECT_CONTAINS(error_of(lie), "is not CUDA device memory");
}

TEST_F(DeviceFrames, StridesPastTheAllocationAreRefused) {
  void* plane = nullptr;
  ASSERT_EQ(cudaMalloc(&plane, 32 * 3 * 16), cudaSuccess);  // exactly 16 rows of 32 RGB pixels
  FrameView frame = FrameView::packed(PixelFormat::kRGB, 32, 16, static_cast<const uint8_t*>(plane));
  frame.memory = FrameMemory::kCuda;
  frame.cuda_device = 0;
  EXPECT_EQ(error_of(frame), "") << "the exact allocation is readable";
  frame.strides[0] = 32 * 3 + 16;
  EXPECT_CONTAINS(error_of(frame), "run past the end of their allocation");
  cudaFree(plane);
}

// What GStreamer 1.22's own CUDA context (cuCtxCreate, not the primary context) allocates.
TEST_F(DeviceFrames, AnotherContextsMemoryIsRefused) {
  // CUDA 13's cuCtxCreate (_v4): its creation parameters may be null. The 3-argument _v2 of CUDA 12
  // is what the 12000 lookup was meant to return; the 13.0 driver on the H100 answered it with the
  // _v4 entry (CUDA_ERROR_INVALID_DEVICE from a missing argument), so the lookup asks for 13000.
  using CtxCreate = CUresult (*)(CUcontext*, void*, unsigned int, CUdevice);
  using CtxPop = CUresult (*)(CUcontext*);
  using CtxPush = CUresult (*)(CUcontext);
  using CtxDestroy = CUresult (*)(CUcontext);
  using MemAlloc = CUresult (*)(CUdeviceptr*, size_t);
  using MemFree = CUresult (*)(CUdeviceptr);
  auto entry = [](const char* name) {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult status;
    EXPECT_EQ(cudaGetDriverEntryPointByVersion(name, &fn, 13000, cudaEnableDefault, &status), cudaSuccess) << name;
    return fn;
  };
  auto create = reinterpret_cast<CtxCreate>(entry("cuCtxCreate"));
  auto pop = reinterpret_cast<CtxPop>(entry("cuCtxPopCurrent"));
  auto push = reinterpret_cast<CtxPush>(entry("cuCtxPushCurrent"));
  auto destroy = reinterpret_cast<CtxDestroy>(entry("cuCtxDestroy"));
  auto alloc = reinterpret_cast<MemAlloc>(entry("cuMemAlloc"));
  auto release = reinterpret_cast<MemFree>(entry("cuMemFree"));
  ASSERT_TRUE(create && pop && push && destroy && alloc && release);
  at::empty({1}, at::TensorOptions().device(kGpu));  // the primary context exists first
  CUcontext other = nullptr;
  ASSERT_EQ(create(&other, nullptr, 0, 0), CUDA_SUCCESS);
  CUdeviceptr plane = 0;
  ASSERT_EQ(alloc(&plane, 32 * 3 * 16), CUDA_SUCCESS);
  CUcontext popped = nullptr;
  ASSERT_EQ(pop(&popped), CUDA_SUCCESS);
  FrameView frame = FrameView::packed(PixelFormat::kRGB, 32, 16, reinterpret_cast<const uint8_t*>(plane));
  frame.memory = FrameMemory::kCuda;
  frame.cuda_device = 0;
  const std::string error = error_of(frame);
  EXPECT_CONTAINS(error, "primary context");
  EXPECT_CONTAINS(error, "plane 0 (packed)");
  push(other);
  release(plane);
  pop(&popped);
  destroy(other);
}

// The engine end to end: a fixture model on the GPU answers a frame from device memory with the
// ids of the same frame from host memory, and has let the caller's buffer go when it answers.
TEST_F(DeviceFrames, TheEngineAnswersDeviceFramesAsHostFrames) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.device = "cuda";
  o.dtype = "float32";
  auto engine = Engine::create(o);
  int images = 0;
  for (const auto& c : test::load_network_cases("tiny-a")) {
    if (c.info.at("images").get<int>() == 0) continue;
    ++images;
    test::CaseRequest from_host = test::case_request(c);
    test::CaseRequest from_device = test::case_request(c);
    std::atomic<int> released{0};
    for (FrameView& frame : from_device.request.images) frame = on_device(frame, &released);
    const size_t frames = from_device.request.images.size();
    Result want = engine->submit(std::move(from_host.request)).result.get();
    Result got = engine->submit(std::move(from_device.request)).result.get();
    ASSERT_EQ(want.status, Status::kAnswered) << c.name << ": " << want.error;
    ASSERT_EQ(got.status, Status::kAnswered) << c.name << ": " << got.error;
    EXPECT_EQ(got.token_ids, want.token_ids) << c.name;
    EXPECT_EQ(got.token_ids, test::ids32(c.t.at("greedy_ids"))) << c.name;
    EXPECT_EQ(released.load(), static_cast<int>(frames)) << c.name << ": every device frame released by the answer";
  }
  EXPECT_GT(images, 0) << "the fixture cases hold no image";
}

// A device frame that fails its checks fails its request at once, saying why, and is released.
TEST_F(DeviceFrames, TheEngineFailsAnUnreadableDeviceFrameSayingWhy) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.device = "cuda";
  o.dtype = "float32";
  auto engine = Engine::create(o);
  std::vector<uint8_t> host(32 * 32 * 3);
  std::atomic<int> released{0};
  Request request;
  request.prompt = "What is this?";
  FrameView frame = FrameView::packed(PixelFormat::kRGB, 32, 32, host.data());
  frame.memory = FrameMemory::kCuda;
  frame.cuda_device = 0;
  frame.keep_alive = release_callback([&] { ++released; });
  request.images.push_back(std::move(frame));
  Result result = engine->submit(std::move(request)).result.get();
  EXPECT_EQ(result.status, Status::kFailed);
  EXPECT_CONTAINS(result.error, "image 1");
  EXPECT_CONTAINS(result.error, "is not CUDA device memory");
  EXPECT_EQ(released.load(), 1);
  EXPECT_TRUE(engine->stats().fault.empty()) << "a refused frame must not touch the device";
}

}  // namespace
}  // namespace qwenvl
