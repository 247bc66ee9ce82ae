// Frames in CUDA memory (FrameView::memory kCuda) as the engine takes them, checked on the CPU:
// descriptors that can never be read (no device index, a device other than the engine's, an engine
// on the CPU, bad strides, null planes, an unknown memory kind) fail with the reason before any
// pointer is touched, and the release callback runs exactly once, when the last holder lets go.
// The device side (the driver's account of the pointers, the same pixels as host frames) is
// tests/gpu/test_device_frames.cpp's.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "preprocessing/device_frame.h"
#include "preprocessing/owned_frame.h"
#include "preprocessing/pixel_values.h"
#include "qwenvl/error.h"
#include "runtime/request_preparation.h"

namespace {

using namespace qwenvl;
using namespace qwenvl::model;

// A descriptor of a 16x8 NV12 frame said to lie on cuda:0; its pointers are host addresses that the
// checks under test must never read.
FrameView cuda_nv12(const std::vector<uint8_t>& stand_in) {
  FrameView view = FrameView::packed(PixelFormat::kNV12, 16, 8, stand_in.data());
  view.memory = FrameMemory::kCuda;
  view.cuda_device = 0;
  return view;
}

std::string error_of(const FrameView& frame, const c10::Device& device) {
  try {
    copy_frame(frame, device);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(DeviceFrame, AnEngineOnTheCpuRefusesCudaMemory) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  const std::string error = error_of(cuda_nv12(bytes), c10::Device(c10::kCPU));
  EXPECT_CONTAINS(error, "CUDA memory");
  EXPECT_CONTAINS(error, "on cuda:0");
  EXPECT_CONTAINS(error, "prepares frames on cpu");
}

TEST(DeviceFrame, AnotherDeviceIsRefusedBeforeItsPointersAreRead) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  FrameView frame = cuda_nv12(bytes);
  frame.cuda_device = 1;
  const std::string error = error_of(frame, c10::Device(c10::kCUDA, 0));
  EXPECT_CONTAINS(error, "on cuda:1");
  EXPECT_CONTAINS(error, "prepares frames on cuda:0");
}

TEST(DeviceFrame, ANegativeDeviceIndexIsRefused) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  FrameView frame = cuda_nv12(bytes);
  frame.cuda_device = -1;
  EXPECT_CONTAINS(error_of(frame, c10::Device(c10::kCUDA, 0)), "cuda_device -1 is not a device index");
}

TEST(DeviceFrame, StridesShorterThanARowAreRefused) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  FrameView frame = cuda_nv12(bytes);
  frame.strides[1] = 8;  // the UV plane's row is 16 bytes
  const std::string error = error_of(frame, c10::Device(c10::kCUDA, 0));
  EXPECT_CONTAINS(error, "plane 1 (UV) stride 8 is smaller than its row of 16 bytes");
}

TEST(DeviceFrame, NullPlanesAreRefused) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  FrameView frame = cuda_nv12(bytes);
  frame.planes[1] = nullptr;
  EXPECT_CONTAINS(error_of(frame, c10::Device(c10::kCUDA, 0)), "plane 1 (UV) is null");
}

TEST(DeviceFrame, AnUnknownMemoryKindIsRefused) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  FrameView frame = cuda_nv12(bytes);
  frame.memory = static_cast<FrameMemory>(7);
  EXPECT_CONTAINS(error_of(frame, c10::Device(c10::kCUDA, 0)), "unknown memory kind 7");
}

TEST(DeviceFrame, ReleaseRunsOnceWhenTheLastHolderLetsGo) {
  std::atomic<int> released{0};
  {
    std::shared_ptr<const void> first = release_callback([&] { ++released; });
    std::shared_ptr<const void> second = first;
    first.reset();
    EXPECT_EQ(released.load(), 0);
  }
  EXPECT_EQ(released.load(), 1);
}

TEST(DeviceFrame, ARefusedFrameIsReleasedWithTheError) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  std::atomic<int> released{0};
  Request request;
  request.prompt = "hi";
  FrameView frame = cuda_nv12(bytes);
  frame.keep_alive = release_callback([&] { ++released; });
  request.images.push_back(std::move(frame));
  EXPECT_THROW(runtime::copy_media(request, c10::Device(c10::kCPU)), Error);
  runtime::release_request_frames(request);
  EXPECT_EQ(released.load(), 1) << "nothing may hold the caller's buffer once the request failed";
}

TEST(DeviceFrame, AHostFrameIsCopiedAndItsKeepAliveNotHeld) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2, 7);
  std::atomic<int> released{0};
  FrameView frame = FrameView::packed(PixelFormat::kNV12, 16, 8, bytes.data());
  frame.keep_alive = release_callback([&] { ++released; });
  const OwnedFrame owned = copy_frame(frame);
  frame.keep_alive.reset();
  EXPECT_EQ(released.load(), 1) << "a host frame is copied at submit: the engine keeps no hold on it";
  EXPECT_FALSE(owned.on_device());
  EXPECT_EQ(owned.bytes, bytes);
}

TEST(DeviceFrame, PackingADeviceFrameForTheCpuIsRefused) {
  const std::vector<uint8_t> bytes(16 * 8 * 3 / 2);
  OwnedFrame owned;
  owned.layout = cuda_nv12(bytes);  // as copy_frame keeps a device frame, without its device check
  EXPECT_THROW(pack_frames({&owned}, at::kCPU), Error);
}

}  // namespace
