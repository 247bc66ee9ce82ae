// The child process of test_element_leaks: runs a qwenvl pipeline NULL->PLAYING->NULL several times
// with buffers flowing and answers produced (every kind of output in use: meta, messages, partial
// messages, the text pad, the overlay), then gst_deinit(), so that GStreamer's leaks tracer
// (GST_TRACERS=leaks) reports every GstObject and GstMiniObject still alive.
//   state_cycle_child MODEL_DIR CYCLES [--plant-leak]
// --plant-leak leaks one buffer and one event on purpose: the test's proof that it sees leaks.
// Prints "answers N" (qwenvl-result messages seen over all cycles) on stdout.
#include <gst/gst.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// One cycle: PLAYING until EOS (stop_early: until the first answer, with requests still in flight
// and buffers still flowing), then NULL. Returns the answers seen, or -1 on an error.
int run_cycle(const std::string& model, bool stop_early) {
  const std::string description =
      "videotestsrc num-buffers=" + std::string(stop_early ? "300" : "8") +
      " ! video/x-raw,format=NV12,width=64,height=48,framerate=10/1"
      " ! qwenvl name=q model=\"" + model + "\" mode=" + (stop_early ? "async" : "sync") +
      " temperature=0 max-new-tokens=3 interval=300000000 overlay=true emit-partial=true"
      " ! fakesink q.text_src ! queue ! fakesink";
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (pipeline == nullptr || error != nullptr) {
    std::fprintf(stderr, "parse: %s\n", error ? error->message : "failed");
    if (error) g_error_free(error);
    if (pipeline) gst_object_unref(pipeline);
    return -1;
  }
  int answers = 0;
  bool failed = gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE;
  GstBus* bus = gst_element_get_bus(pipeline);
  while (!failed) {
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 120 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT));
    if (m == nullptr) {
      std::fprintf(stderr, "timed out\n");
      failed = true;
      break;
    }
    bool done = GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* e = nullptr;
      gst_message_parse_error(m, &e, nullptr);
      std::fprintf(stderr, "error: %s\n", e->message);
      g_error_free(e);
      failed = true;
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT &&
               gst_structure_has_name(gst_message_get_structure(m), "qwenvl-result")) {
      ++answers;
      done |= stop_early;
    }
    gst_message_unref(m);
    if (done) break;
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return failed ? -1 : answers;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR CYCLES [--plant-leak]\n", argv[0]);
    return 2;
  }
  gst_init(&argc, &argv);
  const std::string model = argv[1];
  const int cycles = std::atoi(argv[2]);
  int answers = 0;
  for (int i = 0; i < cycles; ++i) {
    const int n = run_cycle(model, i % 2 == 1);
    if (n < 0) return 1;
    answers += n;
  }
  if (argc > 3 && std::strcmp(argv[3], "--plant-leak") == 0) {
    GstBuffer* leaked_buffer = gst_buffer_new_allocate(nullptr, 16, nullptr);
    GstEvent* leaked_event = gst_event_new_eos();
    (void)leaked_buffer;
    (void)leaked_event;
  }
  std::printf("answers %d\n", answers);
  std::fflush(stdout);
  gst_deinit();
  return 0;
}
