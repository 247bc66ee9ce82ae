// The element's CUDA-memory module without GStreamer's CUDA library (cuda_frames.cpp built alone):
// which device settings make an engine on exactly one CUDA device (the only case where the element
// offers CUDA memory), and a build without the library saying so instead of taking such frames.
#include <gtest/gtest.h>

#include <string>

#include "cuda_frames.h"

namespace {

using qwenvl::gst::single_cuda_device;

TEST(CudaFrames, OneCudaDeviceIsRecognisedFromDeviceOrDevices) {
  EXPECT_EQ(single_cuda_device("cuda", ""), 0);
  EXPECT_EQ(single_cuda_device("cuda:0", ""), 0);
  EXPECT_EQ(single_cuda_device("cuda:3", ""), 3);
  EXPECT_EQ(single_cuda_device("cpu", "cuda:1"), 1) << "devices wins over device";
  EXPECT_EQ(single_cuda_device("cuda:0", "cpu"), -1);
}

TEST(CudaFrames, TheCpuSeveralDevicesAndCapsAreNotOne) {
  EXPECT_EQ(single_cuda_device("cpu", ""), -1);
  EXPECT_EQ(single_cuda_device("cuda", "cuda:0,cuda:1"), -1);
  EXPECT_EQ(single_cuda_device("cuda", "cuda:0=20GiB"), -1);
  EXPECT_EQ(single_cuda_device("cuda:", ""), -1);
  EXPECT_EQ(single_cuda_device("cudax", ""), -1);
  EXPECT_EQ(single_cuda_device("cuda:-1", ""), -1);
}

TEST(CudaFrames, ABuildWithoutGstCudaSaysSo) {
  EXPECT_FALSE(qwenvl::gst::built_with_gst_cuda());
  std::string why;
  EXPECT_EQ(qwenvl::gst::CudaFrames::create(0, &why), nullptr);
  EXPECT_NE(why.find("without GStreamer's CUDA library"), std::string::npos) << why;
}

}  // namespace
