// preprocess_video on the CPU against transformers 5.17's Qwen2VLVideoProcessor (torchvision
// backend, CPU): odd and even frame counts (an odd tail repeats the last frame), odd frame sizes,
// per-request limits and cap_pixels_per_frame, frames given as RGB; grid_thw equal and pixel_values
// bit-identical.
#include "preprocessing/video_processor.h"

#include <gtest/gtest.h>

#include "preprocessing/frames.h"
#include "preprocessing/preprocess_reference.h"
#include "qwenvl/error.h"

namespace {

using qwenvl::model::OwnedFrame;
using qwenvl::model::preprocess_video;
using qwenvl::model::ProcessorConfig;
using qwenvl::model::VideoOptions;
using qwenvl::model::VisionInput;
namespace t = qwenvl::test;

ProcessorConfig video_config() { return t::processor_config(t::preprocess_index().at("video_processor")); }

VisionInput run(const std::vector<OwnedFrame>& frames, const ProcessorConfig& config, const VideoOptions& options = {}) {
  return preprocess_video(frames, config, options, at::kCPU);
}

TEST(VideoProcessor, BitIdenticalToTransformers) {
  const auto& cases = t::preprocess_index().at("videos");
  ASSERT_GE(cases.size(), 5u);
  int odd = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int64_t n = c.at("frames"), h = c.at("height"), w = c.at("width");
    odd += n % 2;
    const auto pixels = t::read_array<uint8_t>(c.at("input"), static_cast<size_t>(n * h * w * 3));
    std::vector<OwnedFrame> frames;
    for (int64_t i = 0; i < n; ++i) frames.push_back(t::owned_rgb_frame(pixels.data() + i * h * w * 3, w, h, 3 * w));
    VideoOptions options;
    if (!c.at("min_pixels").is_null()) options.min_pixels = c.at("min_pixels").get<int64_t>();
    if (!c.at("max_pixels").is_null()) options.max_pixels = c.at("max_pixels").get<int64_t>();
    options.cap_pixels_per_frame = c.at("cap_pixels_per_frame");
    options.max_video_tokens = c.at("max_video_tokens");

    const auto ours = run(frames, video_config(), options);
    EXPECT_EQ(std::vector<int64_t>(ours.grid_thw.begin(), ours.grid_thw.end()),
              c.at("grid_thw").get<std::vector<int64_t>>());
    const auto shape = c.at("shape").get<std::vector<int64_t>>();
    ASSERT_EQ(ours.pixel_values.sizes().vec(), shape);
    const auto ref = t::read_array<float>(c.at("pixel_values"), static_cast<size_t>(shape[0] * shape[1]));
    const auto cmp = t::compare_bits(ours.pixel_values.data_ptr<float>(), ref.data(), ref.size());
    EXPECT_EQ(cmp.differing, 0) << "max |diff| " << cmp.max_abs_diff;
  }
  EXPECT_GE(odd, 3);
}

TEST(VideoProcessor, RejectsBadInput) {
  std::vector<uint8_t> a(40 * 30 * 3, 1), b(40 * 31 * 3, 2);
  const ProcessorConfig config = video_config();
  EXPECT_THROW(run({}, config), qwenvl::Error);
  EXPECT_THROW(run({t::owned_rgb_frame(a.data(), 40, 30, 120), t::owned_rgb_frame(b.data(), 40, 31, 120)}, config), qwenvl::Error);
  EXPECT_THROW(run({t::owned_rgb_frame(a.data(), 40, 30, 120), t::owned_rgb_frame(nullptr, 40, 30, 120)}, config), qwenvl::Error);
  EXPECT_THROW(run({t::owned_rgb_frame(a.data(), 40, 30, 100)}, config), qwenvl::Error);
  EXPECT_NO_THROW(run({t::owned_rgb_frame(a.data(), 40, 30, 120), t::owned_rgb_frame(a.data(), 40, 30, 120)}, config));
}

TEST(VideoProcessor, MismatchErrorNamesTheFrame) {
  std::vector<uint8_t> a(40 * 30 * 3, 1), b(41 * 30 * 3, 2);
  try {
    run({t::owned_rgb_frame(a.data(), 40, 30, 120), t::owned_rgb_frame(a.data(), 40, 30, 120), t::owned_rgb_frame(b.data(), 41, 30, 123)},
        video_config());
    FAIL() << "frames of different sizes must be rejected";
  } catch (const qwenvl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame 2"), std::string::npos) << e.what();
  }
}

}  // namespace
