// history-size: each question carries the stream's earlier (prompt, answer) turns as text, the
// answer equal to the engine API's for a Request with that history; cleared on flush and on
// stream-start.
#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;
constexpr const char* kPrompt = "What do you see?";

Result direct(const TestFrame& frame, const std::vector<Turn>& history) {
  Request request;
  request.images.push_back(frame.view());
  request.prompt = kPrompt;
  request.history = history;
  return ask_engine(std::move(request), 4);
}

TEST(ElementHistory, EarlierTurnsAreSentAndForgottenOnFlushAndStreamStart) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 28, 20, 0, 1);
  Rig rig("mode=sync temperature=0 max-new-tokens=4 interval=0 history-size=2");
  g_object_set(rig.element, "prompt", kPrompt, nullptr);
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());

  std::vector<Turn> turns;  // what the element should have sent so far
  int first_prompt_tokens = -1;
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    GstStructure* meta = rig.answer_of(frame, i * kFrame);
    ASSERT_NE(meta, nullptr);
    const std::vector<Turn> expected_history(turns.size() > 2 ? turns.end() - 2 : turns.begin(), turns.end());
    const Result d = direct(frame, expected_history);
    ASSERT_EQ(d.status, Status::kAnswered) << d.error;
    EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), d.prompt_tokens);
    EXPECT_EQ(token_ids(meta), d.token_ids);
    if (i == 0) first_prompt_tokens = d.prompt_tokens;
    else EXPECT_GT(d.prompt_tokens, first_prompt_tokens) << "the history adds tokens";
    turns.push_back({kPrompt, str(meta, GST_QWENVL_FIELD_TEXT)});
    gst_structure_free(meta);
  }

  // Flush: the conversation starts over.
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_segment(&segment)));
  GstStructure* meta = rig.answer_of(frame, 0);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), first_prompt_tokens);
  gst_structure_free(meta);
  meta = rig.answer_of(frame, kFrame);  // one turn again
  ASSERT_NE(meta, nullptr);
  EXPECT_GT(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), first_prompt_tokens);
  gst_structure_free(meta);

  // A new stream: forgotten too.
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_stream_start("another")));
  ASSERT_TRUE(gst_harness_push_event(rig.video, gst_event_new_segment(&segment)));
  meta = rig.answer_of(frame, 0);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(i32(meta, GST_QWENVL_FIELD_PROMPT_TOKENS), first_prompt_tokens);
  gst_structure_free(meta);
}

TEST(ElementHistory, ZeroKeepsNoneAndTheSizeCanChangeWhilePlaying) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 28, 20, 0, 2);
  Rig rig("mode=sync temperature=0 max-new-tokens=4 interval=0");
  g_object_set(rig.element, "prompt", kPrompt, nullptr);
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstStructure* a = rig.answer_of(frame, 0);
  GstStructure* b = rig.answer_of(frame, kFrame);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(i32(a, GST_QWENVL_FIELD_PROMPT_TOKENS), i32(b, GST_QWENVL_FIELD_PROMPT_TOKENS));
  // Turned on while playing: remembered from the next answer on.
  rig.set("history-size=1");
  GstStructure* c = rig.answer_of(frame, 2 * kFrame);
  GstStructure* d = rig.answer_of(frame, 3 * kFrame);
  ASSERT_NE(c, nullptr);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(i32(c, GST_QWENVL_FIELD_PROMPT_TOKENS), i32(a, GST_QWENVL_FIELD_PROMPT_TOKENS));
  const Result expected = direct(frame, {{kPrompt, str(c, GST_QWENVL_FIELD_TEXT)}});
  EXPECT_EQ(i32(d, GST_QWENVL_FIELD_PROMPT_TOKENS), expected.prompt_tokens);
  EXPECT_EQ(token_ids(d), expected.token_ids);
  for (GstStructure* s : {a, b, c, d}) gst_structure_free(s);
}

}  // namespace
}  // namespace qwenvl::test
