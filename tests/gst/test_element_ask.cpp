// The `ask` action signal: a question about the next frame, whose answer carries the request id the
// signal returned — in the meta, the qwenvl-result message and the result signal — and equals the
// engine API's answer to that question about that frame.
#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;

guint64 ask(GstElement* element, const char* prompt) {
  guint64 id = 0;
  g_signal_emit_by_name(element, "ask", prompt, &id);
  return id;
}

TEST(ElementAsk, AnswerCarriesTheIdTheSignalReturned) {
  const TestFrame first = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 0);
  const TestFrame second = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 1);
  // Interval sampling asks only the first frame (the next is due after 100 s).
  Rig rig("mode=sync temperature=0 max-new-tokens=6 interval=100000000000 prompt=Describe.");
  gst_harness_set_src_caps_str(rig.video, first.caps("10/1").c_str());
  GstBuffer* out = rig.push_pull(first.buffer(0, kFrame));
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(gst_buffer_count_qwenvl_meta(out), 1u);
  const guint64 interval_id = u64(gst_buffer_get_qwenvl_meta(out), GST_QWENVL_FIELD_REQUEST_ID);
  gst_buffer_unref(out);
  free_all(rig.messages("qwenvl-result"));
  free_all(rig.signalled);

  // Two questions before the next frame: both about it, each with its own id.
  const guint64 colour = ask(rig.element, "What colour is it?");
  const guint64 fallback = ask(rig.element, nullptr);  // the prompt property
  EXPECT_NE(colour, 0u);
  EXPECT_NE(fallback, 0u);
  EXPECT_NE(colour, fallback);
  EXPECT_NE(colour, interval_id);
  EXPECT_NE(fallback, interval_id);

  out = rig.push_pull(second.buffer(kFrame, kFrame));
  ASSERT_NE(out, nullptr);
  std::vector<GstStructure*> metas = metas_of(out);
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  ASSERT_EQ(metas.size(), 2u) << "the asked frame carries both answers (interval asked nothing)";
  ASSERT_EQ(messages.size(), 2u);
  ASSERT_EQ(rig.signalled.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(same_fields(metas[i], messages[i]));
    EXPECT_TRUE(same_fields(metas[i], rig.signalled[i]));
  }
  for (const GstStructure* meta : metas) {
    const guint64 id = u64(meta, GST_QWENVL_FIELD_REQUEST_ID);
    ASSERT_TRUE(id == colour || id == fallback) << gst_structure_to_string(meta);
    const std::string prompt = id == colour ? "What colour is it?" : "Describe.";
    EXPECT_EQ(str(meta, GST_QWENVL_FIELD_PROMPT), prompt);
    EXPECT_EQ(u64(meta, GST_QWENVL_FIELD_PTS), kFrame);
    Request request;
    request.images.push_back(second.view());
    request.prompt = prompt;
    const Result direct = ask_engine(std::move(request), 6);
    ASSERT_EQ(direct.status, Status::kAnswered) << direct.error;
    EXPECT_EQ(token_ids(meta), direct.token_ids) << prompt;
    EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), direct.prompt_tokens);
  }
  EXPECT_NE(u64(metas[0], GST_QWENVL_FIELD_REQUEST_ID), u64(metas[1], GST_QWENVL_FIELD_REQUEST_ID));
  gst_buffer_unref(out);
  free_all(metas);
  free_all(messages);

  // Asked once: the frame after carries nothing.
  out = rig.push_pull(second.buffer(2 * kFrame, kFrame));
  EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u);
  gst_buffer_unref(out);
}

// A question the engine cannot answer (here: a prompt longer than the context) ends with a
// qwenvl-failed message carrying the id `ask` returned, so an application never waits for it.
TEST(ElementAsk, FailedQuestionPostsItsIdAndWhy) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=4 interval=100000000000 prompt=Describe.");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstBuffer* out = rig.push_pull(frame.buffer(0, kFrame));
  ASSERT_NE(out, nullptr);
  gst_buffer_unref(out);
  free_all(rig.messages("qwenvl-result"));
  free_all(rig.signalled);

  std::string huge;
  for (int i = 0; i < 40000; ++i) huge += " cat";
  const guint64 id = ask(rig.element, huge.c_str());
  ASSERT_NE(id, 0u);
  out = rig.push_pull(frame.buffer(kFrame, kFrame));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u);
  gst_buffer_unref(out);
  std::vector<GstStructure*> failed = rig.messages("qwenvl-failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(u64(failed[0], GST_QWENVL_FIELD_REQUEST_ID), id);
  EXPECT_EQ(u64(failed[0], GST_QWENVL_FIELD_PTS), kFrame);
  EXPECT_EQ(str(failed[0], "status"), "failed");
  EXPECT_NE(str(failed[0], "error").find("max_context"), std::string::npos) << str(failed[0], "error");
  EXPECT_TRUE(rig.signalled.empty()) << "a failure is not an answer";
  free_all(failed);
}

TEST(ElementAsk, AsyncAnswerArrivesWithItsIdAndIsNeverDropped) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_NV12, 26, 18, 4, 2);
  // Async, max-pending 1, skip-while-busy: the ask is asked even while an interval request is pending.
  Rig rig("mode=async temperature=0 max-new-tokens=5 interval=0 max-pending=1");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstBuffer* out = rig.push_pull(frame.buffer(0, kFrame));  // the interval request, now in flight
  gst_buffer_unref(out);
  const guint64 id = ask(rig.element, "Is there text?");
  bool found = false;
  for (int i = 1; i < 400 && !found; ++i) {
    out = rig.push_pull(frame.buffer(i * kFrame, kFrame));
    ASSERT_NE(out, nullptr);
    std::vector<GstStructure*> metas = metas_of(out);
    for (const GstStructure* meta : metas)
      if (u64(meta, GST_QWENVL_FIELD_REQUEST_ID) == id) {
        found = true;
        EXPECT_EQ(str(meta, GST_QWENVL_FIELD_PROMPT), "Is there text?");
        EXPECT_EQ(u64(meta, GST_QWENVL_FIELD_PTS), kFrame);  // asked about the frame after the signal
        Request request;
        request.images.push_back(frame.view());
        request.prompt = "Is there text?";
        EXPECT_EQ(token_ids(meta), ask_engine(std::move(request), 5).token_ids);
      }
    free_all(metas);
    gst_buffer_unref(out);
    if (!found) g_usleep(5000);
  }
  EXPECT_TRUE(found) << "no answer carried request id " << id;
  std::vector<GstStructure*> messages = rig.messages("qwenvl-result");
  size_t with_id = 0;
  for (const GstStructure* m : messages) with_id += u64(m, GST_QWENVL_FIELD_REQUEST_ID) == id;
  EXPECT_EQ(with_id, 1u);
  free_all(messages);
}

TEST(ElementAsk, QuestionsWaitingWhenTheElementStopsAreDropped) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 16, 16, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=3 interval=100000000000");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  gst_buffer_unref(rig.push_pull(frame.buffer(0, kFrame)));
  ask(rig.element, "Never asked?");
  // Stopped (PAUSED->READY) and restarted: the question is gone.
  ASSERT_EQ(gst_element_set_state(rig.element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  ASSERT_EQ(gst_element_set_state(rig.element, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_stream_start("restarted")));
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstBuffer* out = rig.push_pull(frame.buffer(0, kFrame));
  std::vector<GstStructure*> metas = metas_of(out);
  ASSERT_EQ(metas.size(), 1u);  // the interval's question only
  EXPECT_NE(str(metas[0], GST_QWENVL_FIELD_PROMPT), "Never asked?");
  free_all(metas);
  gst_buffer_unref(out);
}

}  // namespace
}  // namespace qwenvl::test
