// Part of test_qwenvl_cli where qwenvl-cli reads media with OpenCV: the sample clip its video cases use.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;

// The video references hold because the clip is lossless: OpenCV decodes clip.avi to exactly the frames
// transformers was given (stored beside it as PNG), at the rate and count its header states.
TEST(SampleClip, OpenCvDecodesTheFramesTransformersSaw) {
  const fs::path media = qwenvl::test::fixtures_dir() / "media";
  cv::VideoCapture capture((media / "clip.avi").string());
  ASSERT_TRUE(capture.isOpened());
  EXPECT_EQ(capture.get(cv::CAP_PROP_FPS), 6.0);
  EXPECT_EQ(capture.get(cv::CAP_PROP_FRAME_COUNT), 12.0);
  int count = 0;
  cv::Mat frame;
  while (capture.read(frame)) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%02d.png", count);
    const cv::Mat png = cv::imread((media / "clip" / name).string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(png.empty()) << name;
    ASSERT_EQ(frame.size(), png.size()) << name;
    EXPECT_EQ(cv::norm(frame, png, cv::NORM_INF), 0.0) << name;
    ++count;
  }
  EXPECT_EQ(count, 12);
}

}  // namespace
