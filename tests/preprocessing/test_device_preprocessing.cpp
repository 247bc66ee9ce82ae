// preprocess_image / preprocess_video on a CUDA device (kernels/frame_preparation's kernels)
// against the same calls on the CPU (its CPU reference, which test_image_processor and
// test_video_processor hold to transformers and test_frame_convert to GStreamer's videoconvert),
// bit for bit, for every pixel format; without a GPU these comparisons are skipped. Also
// transformers' own reference images on the GPU, and the errors, which must be the CPU's.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "preprocessing/image_processor.h"
#include "preprocessing/owned_frame.h"
#include "preprocessing/preprocess_reference.h"
#include "preprocessing/video_processor.h"
#include "qwenvl/error.h"

namespace {

using namespace qwenvl;
using namespace qwenvl::model;
namespace t = qwenvl::test;

// A frame of random bytes in the caller's memory, rows padded by `pad` bytes.
struct CallerFrame {
  std::vector<std::vector<uint8_t>> planes;
  FrameView view;
};

CallerFrame random_frame(PixelFormat format, int w, int h, int pad, YuvMatrix matrix, bool full_range,
                         std::mt19937& rng) {
  const int cw = (w + 1) / 2, ch = (h + 1) / 2;
  std::vector<std::pair<int, int>> shape;  // row bytes, rows
  switch (format) {
    case PixelFormat::kRGB:
    case PixelFormat::kBGR: shape = {{3 * w, h}}; break;
    case PixelFormat::kNV12: shape = {{w, h}, {2 * cw, ch}}; break;
    case PixelFormat::kI420: shape = {{w, h}, {cw, ch}, {cw, ch}}; break;
    default: shape = {{4 * w, h}}; break;
  }
  CallerFrame f;
  f.view.format = format;
  f.view.width = w;
  f.view.height = h;
  f.view.yuv_matrix = matrix;
  f.view.yuv_full_range = full_range;
  for (size_t p = 0; p < shape.size(); ++p) {
    std::vector<uint8_t> plane(static_cast<size_t>((shape[p].first + pad) * shape[p].second));
    for (auto& b : plane) b = static_cast<uint8_t>(rng());
    f.planes.push_back(std::move(plane));
  }
  for (size_t p = 0; p < shape.size(); ++p) {
    f.view.planes[p] = f.planes[p].data();
    f.view.strides[p] = shape[p].first + pad;
  }
  return f;
}

// The devices held to the CPU: the GPU where one is visible (the CPU against itself proves nothing).
std::vector<at::Device> devices() {
  std::vector<at::Device> d;
  if (at::hasCUDA()) d.emplace_back(at::kCUDA, 0);
  return d;
}

#define SKIP_WITHOUT_GPU() \
  if (devices().empty()) GTEST_SKIP() << "no CUDA device: nothing to compare the CPU with"

void expect_same(const VisionInput& ours, const VisionInput& cpu, const at::Device& device) {
  EXPECT_EQ(ours.grid_thw, cpu.grid_thw);
  EXPECT_EQ(ours.pixel_values.device(), device);
  ASSERT_EQ(ours.pixel_values.scalar_type(), at::kFloat);
  ASSERT_EQ(ours.pixel_values.sizes(), cpu.pixel_values.sizes());
  const at::Tensor got = ours.pixel_values.to(at::kCPU).contiguous();
  EXPECT_TRUE(at::equal(got.view(at::kInt), cpu.pixel_values.contiguous().view(at::kInt))) << "pixel_values differ";
}

struct ImageCase {
  PixelFormat format;
  int w, h, pad;
  YuvMatrix matrix;
  bool full_range;
};

std::vector<ImageCase> image_cases() {
  std::vector<ImageCase> cases;
  for (const auto& entry : kPixelFormatNames) {
    cases.push_back({entry.format, 333, 249, 0, YuvMatrix::kAuto, false});
    cases.push_back({entry.format, 17, 301, 11, YuvMatrix::kAuto, false});
    cases.push_back({entry.format, 1, 1, 1, YuvMatrix::kAuto, false});
  }
  for (PixelFormat f : {PixelFormat::kNV12, PixelFormat::kI420}) {
    for (YuvMatrix m : {YuvMatrix::kBT601, YuvMatrix::kBT709, YuvMatrix::kBT2020})
      for (bool full : {false, true}) cases.push_back({f, 99, 77, 3, m, full});
    cases.push_back({f, 1025, 579, 0, YuvMatrix::kAuto, false});  // HD default: BT.709, H-cosited
  }
  return cases;
}

TEST(DevicePreprocessing, ImagesMatchTheCpuPath) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(20261125);
  ProcessorConfig config;  // Qwen2.5-VL's values
  config.max_pixels = 200 * 28 * 28;  // keeps the HD cases small
  for (const auto& c : image_cases()) {
    const CallerFrame frame = random_frame(c.format, c.w, c.h, c.pad, c.matrix, c.full_range, rng);
    const OwnedFrame owned = copy_frame(frame.view);
    const VisionInput cpu = preprocess_image(owned, config, std::nullopt, std::nullopt, at::kCPU);
    for (const auto& device : devices()) {
      SCOPED_TRACE(std::string(pixel_format_name(c.format)) + " " + std::to_string(c.w) + "x" + std::to_string(c.h) +
                   " matrix " + std::to_string(static_cast<int>(c.matrix)) + (c.full_range ? " full" : " limited") +
                   " on " + device.str());
      expect_same(preprocess_image(owned, config, std::nullopt, std::nullopt, device), cpu, device);
    }
  }
}

TEST(DevicePreprocessing, ConfigVariantsAndLimitsMatchTheCpuPath) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  const CallerFrame frame = random_frame(PixelFormat::kI420, 85, 57, 2, YuvMatrix::kAuto, false, rng);
  const OwnedFrame owned = copy_frame(frame.view);
  std::vector<std::pair<std::string, ProcessorConfig>> configs(6);
  configs[0].first = "defaults";
  configs[1].first = "no rescale";
  configs[1].second.do_rescale = false;
  configs[2].first = "no normalize";
  configs[2].second.do_normalize = false;
  configs[3].first = "other mean, std, factor";
  configs[3].second.image_mean = {0.5, 0.25, 0.125};
  configs[3].second.image_std = {0.3, 0.7, 0.9};
  configs[3].second.rescale_factor = 1.0 / 127.5;
  configs[4].first = "patch 16, merge 1, temporal 3";
  configs[4].second.patch_size = 16;
  configs[4].second.merge_size = 1;
  configs[4].second.temporal_patch_size = 3;
  configs[5].first = "upscale to min_pixels";
  configs[5].second.min_pixels = 300 * 28 * 28;
  for (const auto& [name, config] : configs) {
    const VisionInput cpu = preprocess_image(owned, config, std::nullopt, std::nullopt, at::kCPU);
    for (const auto& device : devices()) {
      SCOPED_TRACE(name + " on " + device.str());
      expect_same(preprocess_image(owned, config, std::nullopt, std::nullopt, device), cpu, device);
    }
  }
  // Per-request limits, and do_resize off on a frame whose sides are multiples of 28.
  ProcessorConfig config;
  const VisionInput limited = preprocess_image(owned, config, 10 * 28 * 28, 12 * 28 * 28, at::kCPU);
  ProcessorConfig keep;
  keep.do_resize = false;
  const CallerFrame exact = random_frame(PixelFormat::kNV12, 56, 84, 0, YuvMatrix::kAuto, false, rng);
  const OwnedFrame exact_owned = copy_frame(exact.view);
  const VisionInput kept = preprocess_image(exact_owned, keep, std::nullopt, std::nullopt, at::kCPU);
  for (const auto& device : devices()) {
    SCOPED_TRACE(device.str());
    expect_same(preprocess_image(owned, config, 10 * 28 * 28, 12 * 28 * 28, device), limited, device);
    expect_same(preprocess_image(exact_owned, keep, std::nullopt, std::nullopt, device), kept, device);
  }
}

TEST(DevicePreprocessing, ClipsMatchTheCpuPath) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  ProcessorConfig config;
  config.max_pixels = 100 * 28 * 28;
  struct ClipCase {
    std::vector<PixelFormat> formats;  // one per frame
    int w, h;
    bool cap;
  };
  const std::vector<ClipCase> cases = {
      {{PixelFormat::kNV12, PixelFormat::kNV12, PixelFormat::kNV12}, 333, 249, false},
      {{PixelFormat::kRGB}, 64, 48, false},
      {{PixelFormat::kI420, PixelFormat::kBGRx, PixelFormat::kNV12, PixelFormat::kRGBA, PixelFormat::kBGR}, 45, 33, true},
      {std::vector<PixelFormat>(18, PixelFormat::kI420), 31, 29, false},
  };
  for (const auto& c : cases) {
    std::vector<CallerFrame> frames;
    std::vector<OwnedFrame> owned;
    for (PixelFormat f : c.formats) frames.push_back(random_frame(f, c.w, c.h, 5, YuvMatrix::kAuto, false, rng));
    for (const auto& f : frames) owned.push_back(copy_frame(f.view));
    VideoOptions options;
    options.cap_pixels_per_frame = c.cap;
    options.max_video_tokens = 64;
    const VisionInput cpu = preprocess_video(owned, config, options, at::kCPU);
    for (const auto& device : devices()) {
      SCOPED_TRACE(std::to_string(c.formats.size()) + " frames " + std::to_string(c.w) + "x" + std::to_string(c.h) +
                   " on " + device.str());
      expect_same(preprocess_video(owned, config, options, device), cpu, device);
    }
  }
}

// transformers' own pixel values for its reference images (RGB frames); on the CPU this is
// test_image_processor's BitIdenticalToTransformers.
TEST(DevicePreprocessing, ReferenceImagesBitIdenticalToTransformers) {
  SKIP_WITHOUT_GPU();
  const auto& index = t::preprocess_index();
  const ProcessorConfig config = t::processor_config(index.at("image_processor"));
  int checked = 0;
  for (const auto& c : index.at("images")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int h = c.at("height"), w = c.at("width");
    const auto packed = t::read_array<uint8_t>(c.at("input"), static_cast<size_t>(h) * w * 3);
    const OwnedFrame owned = copy_frame(FrameView::packed(PixelFormat::kRGB, w, h, packed.data()));
    const auto opt = [](const nlohmann::json& v) {
      return v.is_null() ? std::nullopt : std::optional<int64_t>(v.get<int64_t>());
    };
    const auto shape = c.at("shape").get<std::vector<int64_t>>();
    const auto ref = t::read_array<float>(c.at("pixel_values"), static_cast<size_t>(shape[0] * shape[1]));
    for (const auto& device : devices()) {
      const VisionInput ours =
          preprocess_image(owned, config, opt(c.at("min_pixels")), opt(c.at("max_pixels")), device);
      EXPECT_EQ(std::vector<int64_t>(ours.grid_thw.begin(), ours.grid_thw.end()),
                c.at("grid_thw").get<std::vector<int64_t>>());
      ASSERT_EQ(ours.pixel_values.sizes().vec(), shape);
      const at::Tensor got = ours.pixel_values.to(at::kCPU).contiguous();
      const auto cmp = t::compare_bits(got.data_ptr<float>(), ref.data(), ref.size());
      EXPECT_EQ(cmp.differing, 0) << device.str() << ": max |diff| " << cmp.max_abs_diff;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(DevicePreprocessing, ErrorsAreTheCpuPaths) {
  std::mt19937 rng(3);
  const CallerFrame a = random_frame(PixelFormat::kRGB, 40, 30, 0, YuvMatrix::kAuto, false, rng);
  const CallerFrame b = random_frame(PixelFormat::kRGB, 41, 30, 0, YuvMatrix::kAuto, false, rng);
  const std::vector<OwnedFrame> clip = {copy_frame(a.view), copy_frame(b.view)};
  const CallerFrame wide = random_frame(PixelFormat::kRGB, 403, 2, 0, YuvMatrix::kAuto, false, rng);
  const OwnedFrame wide_owned = copy_frame(wide.view);
  const auto message = [](const std::function<void()>& call) -> std::string {
    try {
      call();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const ProcessorConfig config;
  ProcessorConfig lanczos;
  lanczos.resample = 1;
  ProcessorConfig bad_std;
  bad_std.image_std = {0.2, 0.0, 0.1};
  // Each call's message on `device`.
  const auto messages = [&](const at::Device& device) {
    return std::vector<std::string>{
        message([&] { preprocess_video(clip, config, {}, device); }),
        message([&] { preprocess_video({}, config, {}, device); }),
        message([&] { preprocess_image(clip[0], lanczos, {}, {}, device); }),
        message([&] { preprocess_image(clip[0], bad_std, {}, {}, device); }),
        message([&] { preprocess_image(wide_owned, config, {}, {}, device); }),
    };
  };
  const std::vector<std::string> cpu = messages(at::kCPU);
  EXPECT_NE(cpu[0].find("differs from frame 0's"), std::string::npos) << cpu[0];
  EXPECT_EQ(cpu[1], "video: no frames");
  EXPECT_NE(cpu[2].find("resample 1 is not supported"), std::string::npos) << cpu[2];
  EXPECT_NE(cpu[3].find("image_std has a zero entry"), std::string::npos) << cpu[3];
  EXPECT_NE(cpu[4].find("aspect ratio"), std::string::npos) << cpu[4];
  for (const auto& device : devices()) EXPECT_EQ(messages(device), cpu) << device.str();
}

}  // namespace
