// The element and qwenvl-cli agree: for the same frame (odd size 333x249, rows padded past their
// pixels) as RGB, NV12 and I420 input, the token ids in the element's meta, qwenvl-result message and
// result signal equal the ids `qwenvl-cli --json` prints for a PNG of that frame and the same prompt,
// greedy, with the tiny-a fixture. The PNG holds the frame's RGB pixels; for NV12/I420 the engine's
// own YUV conversion makes them (kernels::frames_to_rgb on the CPU;
// tests/preprocessing/test_frame_convert.cpp holds it to videoconvert), so
// that this test checks the element's path — planes, strides, format, prompt, sampling — not the
// conversion's last level.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "element_rig.h"
#include "preprocessing/frames.h"
#include "tools/program_run.h"

namespace {

namespace fs = std::filesystem;
using qwenvl::test::Rig;
using qwenvl::test::TestFrame;

constexpr int kMaxNewTokens = 10;
const char* const kPrompt = "What is in this picture?";

qwenvl::FrameView view_of(const TestFrame& f) {
  qwenvl::FrameView v;
  v.format = *qwenvl::pixel_format_from_name(gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&f.info)));
  v.width = f.width();
  v.height = f.height();
  for (guint i = 0; i < GST_VIDEO_INFO_N_PLANES(&f.info); ++i) {
    v.planes[i] = f.bytes.data() + f.info.offset[i];
    v.strides[i] = f.info.stride[i];
  }
  return v;
}

// The frame as a PNG file of its RGB pixels.
fs::path write_png(const TestFrame& f, const std::string& name) {
  const at::Tensor rgb = qwenvl::test::frame_rgb(view_of(f));
  const cv::Mat image(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3, rgb.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  const fs::path path = fs::temp_directory_path() / ("qwenvl_parity_" + std::to_string(::getpid()) + "_" + name + ".png");
  if (!cv::imwrite(path.string(), bgr)) throw std::runtime_error("cannot write " + path.string());
  return path;
}

nlohmann::json cli_answer(const fs::path& png) {
  using qwenvl::test::shell_quote;
  const std::string command = shell_quote(qwenvl::test::env_path("QWENVL_CLI")) + " --model " +
                              shell_quote(qwenvl::test::tiny_a()) + " --image " + shell_quote(png.string()) +
                              " --prompt " + shell_quote(kPrompt) + " --temperature 0 --max-new-tokens " +
                              std::to_string(kMaxNewTokens) + " --json";
  const qwenvl::test::ProgramRun run = qwenvl::test::run_shell(command);
  if (run.exit_code != 0) throw std::runtime_error("qwenvl-cli failed (" + std::to_string(run.exit_code) + "): " + run.err);
  return nlohmann::json::parse(run.out);
}

struct ParityCase {
  GstVideoFormat format;
  int padding;
};

class CliParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(CliParity, ElementIdsEqualTheCliIdsForTheSameFrame) {
  const ParityCase c = GetParam();
  const TestFrame frame = qwenvl::test::make_frame(c.format, 333, 249, c.padding, 1);
  ASSERT_GT(frame.info.stride[0], 333 * GST_VIDEO_INFO_COMP_PSTRIDE(&frame.info, 0));  // rows really are padded

  Rig rig("mode=sync temperature=0 max-new-tokens=" + std::to_string(kMaxNewTokens));
  g_object_set(rig.element, "prompt", kPrompt, nullptr);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  ASSERT_EQ(gst_harness_push(rig.video, frame.buffer(GST_SECOND, GST_SECOND / 30)), GST_FLOW_OK);
  GstBuffer* out = gst_harness_pull(rig.video);
  ASSERT_NE(out, nullptr);
  const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
  ASSERT_NE(meta, nullptr);
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(rig.signalled.size(), 1u);

  const fs::path png = write_png(frame, gst_video_format_to_string(c.format));
  const nlohmann::json cli = cli_answer(png);
  fs::remove(png);
  const std::vector<int32_t> cli_ids = cli.at("token_ids").get<std::vector<int32_t>>();
  ASSERT_FALSE(cli_ids.empty());

  EXPECT_EQ(qwenvl::test::token_ids(meta), cli_ids) << "meta";
  EXPECT_EQ(qwenvl::test::token_ids(messages[0]), cli_ids) << "message";
  EXPECT_EQ(qwenvl::test::token_ids(rig.signalled[0]), cli_ids) << "signal";
  EXPECT_EQ(qwenvl::test::str(meta, GST_QWENVL_FIELD_TEXT), cli.at("text").get<std::string>());
  int prompt_tokens = -1;
  gst_structure_get_int(meta, GST_QWENVL_FIELD_PROMPT_TOKENS, &prompt_tokens);
  EXPECT_EQ(prompt_tokens, cli.at("prompt_tokens").get<int>());

  // The ids depend on the pixels (so a frame read with wrong strides could not pass): another
  // pattern gives other ids.
  if (c.format == GST_VIDEO_FORMAT_RGB) {
    const TestFrame other = qwenvl::test::make_frame(c.format, 333, 249, c.padding, 2);
    const fs::path other_png = write_png(other, "other");
    const nlohmann::json other_cli = cli_answer(other_png);
    fs::remove(other_png);
    EXPECT_NE(other_cli.at("token_ids").get<std::vector<int32_t>>(), cli_ids);
  }

  for (auto* s : messages) gst_structure_free(s);
  gst_buffer_unref(out);
}

INSTANTIATE_TEST_SUITE_P(Formats, CliParity,
                         ::testing::Values(ParityCase{GST_VIDEO_FORMAT_RGB, 7}, ParityCase{GST_VIDEO_FORMAT_NV12, 5},
                                           ParityCase{GST_VIDEO_FORMAT_I420, 9}),
                         [](const auto& info) { return std::string(gst_video_format_to_string(info.param.format)); });

}  // namespace
