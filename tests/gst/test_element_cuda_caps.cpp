// The element's CUDA-memory caps on the CPU: the pad templates name video/x-raw(memory:CUDAMemory)
// exactly where the plugin was built with GStreamer's CUDA library; an element whose engine runs on
// the CPU never offers it, and CUDA-memory caps pushed at it fail negotiation with a message saying
// what it takes and what to do. (Frames in CUDA memory themselves: tests/gpu/test_element_cuda_memory.)
#include <gtest/gtest.h>

#include <string>

#include "element_rig.h"

namespace qwenvl::test {
namespace {

bool has_cuda_memory(const GstCaps* caps) {
  for (guint i = 0; i < gst_caps_get_size(caps); ++i) {
    const GstCapsFeatures* f = gst_caps_get_features(caps, i);
    if (f != nullptr && gst_caps_features_contains(f, "memory:CUDAMemory")) return true;
  }
  return false;
}

TEST(ElementCudaCaps, TemplatesNameCudaMemoryExactlyWhereBuiltWithGstCuda) {
  init_gst();
  GstElement* element = gst_element_factory_make("qwenvl", nullptr);
  ASSERT_NE(element, nullptr);
  for (const char* pad : {"sink", "src"}) {
    GstPadTemplate* t = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(element), pad);
    GstCaps* caps = gst_pad_template_get_caps(t);
    EXPECT_EQ(has_cuda_memory(caps), QWENVL_TEST_GST_CUDA != 0) << pad << ": " << gst_caps_to_string(caps);
    GstCaps* host = gst_caps_from_string("video/x-raw,format=NV12,width=64,height=48,framerate=30/1");
    EXPECT_TRUE(gst_caps_can_intersect(caps, host)) << pad << ": host memory is always taken";
    gst_caps_unref(host);
    gst_caps_unref(caps);
  }
  gst_object_unref(element);
}

TEST(ElementCudaCaps, AnEngineOnTheCpuNeverOffersCudaMemory) {
  Rig rig("device=cpu mode=sync");
  gst_harness_play(rig.video);
  GstPad* sink = gst_element_get_static_pad(rig.element, "sink");
  GstCaps* caps = gst_pad_query_caps(sink, nullptr);
  EXPECT_FALSE(has_cuda_memory(caps)) << gst_caps_to_string(caps);
  GstCaps* host = gst_caps_from_string("video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  EXPECT_TRUE(gst_caps_can_intersect(caps, host)) << gst_caps_to_string(caps);
  gst_caps_unref(host);
  gst_caps_unref(caps);
  gst_object_unref(sink);
}

TEST(ElementCudaCaps, CudaMemoryCapsFailNegotiationSayingWhatToDo) {
  Rig rig("device=cpu mode=sync");
  gst_harness_set_src_caps_str(rig.video, "video/x-raw(memory:CUDAMemory),format=RGB,width=64,height=48,framerate=30/1");
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  EXPECT_NE(gst_harness_push(rig.video, frame.buffer(0, GST_SECOND / 30)), GST_FLOW_OK);
  std::string text;
  while (GstMessage* m = gst_bus_pop_filtered(rig.bus, GST_MESSAGE_ERROR)) {
    GError* error = nullptr;
    gst_message_parse_error(m, &error, nullptr);
    text += error->message;
    g_error_free(error);
    gst_message_unref(m);
  }
  EXPECT_NE(text.find("memory:CUDAMemory"), std::string::npos) << text;
  EXPECT_NE(text.find("one CUDA device"), std::string::npos) << text;
}

}  // namespace
}  // namespace qwenvl::test
