// The qwenvl element fed frames in CUDA memory by GStreamer's own cudaupload (gst-plugins-bad's
// nvcodec plugin), on a CUDA device: every answer is the answer to the same frames in host memory
// (greedy ids equal), every frame reached the engine in CUDA memory without a copy through the host
// (stats device-frames: cudaupload took the element's CUDA context), for RGB, BGRx, RGBA, NV12 and
// I420 frames whose device rows are padded to the allocation's pitch; in async mode the metas of
// earlier answers are written onto frames whose memory the engine still holds, without a GStreamer
// critical. Skipped, saying so, where no GPU is visible or cudaupload is not installed.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "gstqwenvlmeta.h"
#include "test_util.h"

namespace qwenvl::test {
namespace {

struct PipelineRun {
  std::vector<std::vector<int>> answers;  // token ids, in the order of the answers
  guint64 device_frames = 0;
  guint64 frame_host_ns = 0;  // stats' frame-host-time: the streaming thread's time per asked frame
  std::string error;
};

// Runs `launch` (its qwenvl element named "q") to EOS and collects its answers.
PipelineRun run_pipeline(const std::string& launch) {
  PipelineRun run;
  GError* parse_error = nullptr;
  GstElement* pipeline = gst_parse_launch(launch.c_str(), &parse_error);
  if (pipeline == nullptr) {
    run.error = parse_error ? parse_error->message : "cannot parse";
    if (parse_error) g_error_free(parse_error);
    return run;
  }
  GstElement* q = gst_bin_get_by_name(GST_BIN(pipeline), "q");
  GstBus* bus = gst_element_get_bus(pipeline);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  for (bool done = false; !done;) {
    GstMessage* m = gst_bus_timed_pop(bus, 120 * GST_SECOND);
    if (m == nullptr) {
      run.error = "no EOS within 120 s";
      break;
    }
    switch (GST_MESSAGE_TYPE(m)) {
      case GST_MESSAGE_EOS: done = true; break;
      case GST_MESSAGE_ERROR: {
        GError* e = nullptr;
        gchar* debug = nullptr;
        gst_message_parse_error(m, &e, &debug);
        run.error = std::string(e->message) + " (" + (debug ? debug : "") + ")";
        g_error_free(e);
        g_free(debug);
        done = true;
        break;
      }
      case GST_MESSAGE_ELEMENT: {
        const GstStructure* s = gst_message_get_structure(m);
        if (gst_structure_has_name(s, "qwenvl-result")) {
          std::vector<int> ids;
          const GValue* array = gst_structure_get_value(s, GST_QWENVL_FIELD_TOKEN_IDS);
          for (guint i = 0; array && i < gst_value_array_get_size(array); ++i)
            ids.push_back(g_value_get_int(gst_value_array_get_value(array, i)));
          run.answers.push_back(std::move(ids));
        }
        break;
      }
      default: break;
    }
    gst_message_unref(m);
  }
  GstStructure* stats = nullptr;
  g_object_get(q, "stats", &stats, nullptr);
  if (stats) {
    gst_structure_get_uint64(stats, "device-frames", &run.device_frames);
    gst_structure_get_uint64(stats, "frame-host-time", &run.frame_host_ns);
    gst_structure_free(stats);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(q);
  gst_object_unref(pipeline);
  return run;
}

class ElementCudaMemory : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    QWENVL_SKIP_WITHOUT_GPU();
    gst_init(nullptr, nullptr);
    GstElementFactory* upload = gst_element_factory_find("cudaupload");
    if (upload == nullptr) GTEST_SKIP() << "no cudaupload element (gst-plugins-bad's nvcodec plugin is not installed)";
    gst_object_unref(upload);
  }
};

class ElementCudaMemoryHd : public ::testing::Test {
 protected:
  void SetUp() override {
    QWENVL_SKIP_WITHOUT_GPU();
    gst_init(nullptr, nullptr);
    GstElementFactory* upload = gst_element_factory_find("cudaupload");
    if (upload == nullptr) GTEST_SKIP() << "no cudaupload element (gst-plugins-bad's nvcodec plugin is not installed)";
    gst_object_unref(upload);
  }
};

TEST_P(ElementCudaMemory, AnswersAreTheHostFramesAnswersWithoutAHostCopy) {
  const int frames = 3;
  const std::string model = (fixtures_dir() / "models" / "tiny-a").string();
  // A moving pattern at an odd width: the device rows are padded to the allocation's pitch.
  const std::string source = "videotestsrc num-buffers=" + std::to_string(frames) +
                             " pattern=ball ! video/x-raw,format=" + GetParam() +
                             ",width=150,height=100,framerate=10/1";
  const std::string element = " ! qwenvl name=q model=" + model +
                              " device=cuda dtype=float32 mode=sync temperature=0 max-new-tokens=6 ! fakesink";
  const PipelineRun host = run_pipeline(source + element);
  const PipelineRun device = run_pipeline(source + " ! cudaupload ! video/x-raw(memory:CUDAMemory)" + element);
  ASSERT_EQ(host.error, "");
  ASSERT_EQ(device.error, "");
  ASSERT_EQ(host.answers.size(), static_cast<size_t>(frames));
  EXPECT_EQ(device.answers, host.answers) << "frames in CUDA memory must be answered as the same frames from the host";
  EXPECT_EQ(host.device_frames, 0u);
  EXPECT_EQ(device.device_frames, static_cast<guint64>(frames))
      << "every frame must reach the engine in CUDA memory (cudaupload in the element's CUDA context)";
}

// At 1920x1080 NV12 (a decoder's output): the same answers, and the streaming thread's time per
// asked frame both ways, printed for scripts/device/cuda_memory.sh's table (a measurement, not a
// bound: host memory pays GStreamer's download and the engine's copy, CUDA memory a map and the
// pointer checks).
TEST_F(ElementCudaMemoryHd, SameAnswersAndTheHostTimePerFrame) {
  const int frames = 8;
  const std::string model = (fixtures_dir() / "models" / "tiny-a").string();
  const std::string source = "videotestsrc num-buffers=" + std::to_string(frames) +
                             " pattern=ball ! video/x-raw,format=NV12,width=1920,height=1080,framerate=30/1";
  const std::string element = " ! qwenvl name=q model=" + model +
                              " device=cuda dtype=float32 mode=sync temperature=0 max-new-tokens=2 ! fakesink";
  const PipelineRun host = run_pipeline(source + element);
  const PipelineRun device = run_pipeline(source + " ! cudaupload ! video/x-raw(memory:CUDAMemory)" + element);
  ASSERT_EQ(host.error, "");
  ASSERT_EQ(device.error, "");
  ASSERT_EQ(host.answers.size(), static_cast<size_t>(frames));
  EXPECT_EQ(device.answers, host.answers);
  EXPECT_EQ(device.device_frames, static_cast<guint64>(frames));
  std::printf("frame-host-time NV12 1920x1080: host memory %.1f us, CUDA memory %.1f us (mean of %d frames)\n",
              host.frame_host_ns / 1e3, device.frame_host_ns / 1e3, frames);
  RecordProperty("frame_host_time_host_ns", std::to_string(host.frame_host_ns));
  RecordProperty("frame_host_time_cuda_ns", std::to_string(device.frame_host_ns));
}

// Async mode: the element keeps writing into the frames it handed over (the metas of earlier
// answers ride on later buffers) while the engine still holds their CUDA memory; GStreamer must not
// object (a critical from a write to a buffer held twice), and every frame asked is answered.
TEST_F(ElementCudaMemoryHd, AsyncModeWritesMetasOnFramesTheEngineHolds) {
  static int criticals = 0;
  criticals = 0;
  const guint handler = g_log_set_handler(
      "GStreamer", static_cast<GLogLevelFlags>(G_LOG_LEVEL_CRITICAL | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
      [](const gchar*, GLogLevelFlags, const gchar* message, gpointer) {
        ++criticals;
        std::fprintf(stderr, "GStreamer critical: %s\n", message);
      },
      nullptr);
  const int frames = 12;
  const std::string model = (fixtures_dir() / "models" / "tiny-a").string();
  const std::string launch = "videotestsrc num-buffers=" + std::to_string(frames) +
                             " pattern=ball ! video/x-raw,format=NV12,width=320,height=240,framerate=30/1 ! cudaupload ! "
                             "video/x-raw(memory:CUDAMemory) ! qwenvl name=q model=" + model +
                             " device=cuda dtype=float32 mode=async max-pending=4 temperature=0 max-new-tokens=4 ! "
                             "fakesink sync=true";
  const PipelineRun run = run_pipeline(launch);
  g_log_remove_handler("GStreamer", handler);
  ASSERT_EQ(run.error, "");
  EXPECT_EQ(criticals, 0);
  EXPECT_GT(run.answers.size(), 0u);
  EXPECT_EQ(run.device_frames, run.answers.size()) << "every frame asked went in CUDA memory and was answered";
}

INSTANTIATE_TEST_SUITE_P(Formats, ElementCudaMemory, ::testing::Values("RGB", "BGRx", "RGBA", "NV12", "I420"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace qwenvl::test
