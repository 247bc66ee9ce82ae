// devices / placement: the element runs the engine over a device list (replicas over cpu,cpu answer
// as one device), the old device property is a one-device alias that devices wins over with a
// warning, and elements share an engine only when model, devices, placement and dtype all match;
// max-batch sizes the engine (its KV cache) and is the creating element's for every sharer.
#include <string>

#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;

// The warnings the element posted so far.
std::vector<std::string> warnings(GstBus* bus) {
  std::vector<std::string> out;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_WARNING)) {
    GError* error = nullptr;
    gst_message_parse_warning(m, &error, nullptr);
    out.emplace_back(error->message);
    g_error_free(error);
    gst_message_unref(m);
  }
  return out;
}

TEST(ElementDevices, ReplicasOverTwoCpusAnswerAsOneDevice) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 32, 32, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=3 devices=cpu,cpu placement=replicas");
  gchar* devices = nullptr;
  g_object_get(rig.element, "devices", &devices, nullptr);
  EXPECT_STREQ(devices, "cpu,cpu");
  g_free(devices);
  gst_harness_set_src_caps_str(rig.video, frame.caps().c_str());
  GstBuffer* out = rig.push_pull(frame.buffer(0, kFrame));
  ASSERT_NE(out, nullptr);
  gst_buffer_unref(out);
  std::vector<GstStructure*> results = rig.messages("qwenvl-result");
  ASSERT_EQ(results.size(), 1u);
  Request request;
  request.images.push_back(frame.view());
  request.prompt = "Describe this image.";
  const Result direct = ask_engine(std::move(request), 3);
  EXPECT_STREQ(gst_structure_get_string(results[0], "text"), direct.text.c_str());
  free_all(results);
  EXPECT_TRUE(warnings(rig.bus).empty());
}

TEST(ElementDevices, DevicesWinsOverDeviceWithAWarning) {
  // device alone would fail (no such device): devices runs instead.
  Rig rig("mode=sync temperature=0 max-new-tokens=2 device=tpu devices=cpu");
  EXPECT_NE(rig.stat("engine-instance"), 0u);
  const std::vector<std::string> said = warnings(rig.bus);
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("devices 'cpu' wins over device 'tpu'"), std::string::npos) << said[0];
}

TEST(ElementDevices, ElementsShareAnEngineOnlyWhenModelDevicesPlacementAndDtypeMatch) {
  Rig a("devices=cpu,cpu placement=replicas");
  Rig same("devices=cpu,cpu placement=replicas");
  Rig other_placement("devices=cpu,cpu placement=auto");
  Rig one_device("device=cpu");
  Rig other_dtype("devices=cpu,cpu placement=replicas dtype=float32");
  const guint64 instance = a.stat("engine-instance");
  EXPECT_NE(instance, 0u);
  EXPECT_EQ(same.stat("engine-instance"), instance);
  for (Rig* r : {&other_placement, &one_device, &other_dtype}) {
    EXPECT_NE(r->stat("engine-instance"), 0u);
    EXPECT_NE(r->stat("engine-instance"), instance);
  }
}

TEST(ElementDevices, MaxBatchSizesTheEngineAndASharerCannotChangeIt) {
  Rig small("engine-id=batch-2 max-batch=2");
  Rig large("engine-id=batch-6 max-batch=6");
  EXPECT_EQ(small.stat("engine-max-batch"), 2u);
  EXPECT_EQ(large.stat("engine-max-batch"), 6u);
  // The KV cache is sized for max-batch sequences of max_context tokens (EngineOptions::kv_cache_bytes 0).
  ASSERT_GT(small.stat("engine-kv-blocks"), 0u);
  EXPECT_EQ(large.stat("engine-kv-blocks"), 3 * small.stat("engine-kv-blocks"));
  EXPECT_TRUE(warnings(small.bus).empty());
  // Shares large's engine (the same engine-id, model, device and dtype): its own max-batch is not applied.
  Rig sharer("engine-id=batch-6 max-batch=3");
  EXPECT_EQ(sharer.stat("engine-instance"), large.stat("engine-instance"));
  EXPECT_EQ(sharer.stat("engine-max-batch"), 6u);
  const std::vector<std::string> said = warnings(sharer.bus);
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("max-batch 3 does not apply: the shared engine runs with max-batch 6"), std::string::npos)
      << said[0];
  guint value = 0;
  g_object_get(sharer.element, "max-batch", &value, nullptr);
  EXPECT_EQ(value, 3u);
}

TEST(ElementDevices, ABadListOrAPlanThatDoesNotFitFailsReadySayingWhy) {
  init_gst();
  for (const auto& [devices, says] : std::vector<std::pair<std::string, std::string>>{
           {"gpu:0", "device list 'gpu:0'"}, {"cpu=1MiB", "does not fit on cpu=1MiB"}}) {
    GstElement* e = gst_element_factory_make("qwenvl", nullptr);
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    g_object_set(e, "model", tiny_a().c_str(), "devices", devices.c_str(), nullptr);
    EXPECT_EQ(gst_element_set_state(e, GST_STATE_READY), GST_STATE_CHANGE_FAILURE) << devices;
    GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    ASSERT_NE(m, nullptr) << devices;
    GError* error = nullptr;
    gst_message_parse_error(m, &error, nullptr);
    EXPECT_NE(std::string(error->message).find(says), std::string::npos) << error->message;
    g_error_free(error);
    gst_message_unref(m);
    gst_element_set_state(e, GST_STATE_NULL);
    gst_element_set_bus(e, nullptr);
    gst_object_unref(bus);
    gst_object_unref(e);
  }
}

}  // namespace
}  // namespace qwenvl::test
