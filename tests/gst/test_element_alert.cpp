// alert-when: an answer that meets the condition posts a qwenvl-alert message and carries
// alert=true in its meta, message and signal; other answers carry alert=false and post nothing;
// a condition that cannot be parsed stops the element from starting, naming the fault.
#include <string>

#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;

bool flag(const GstStructure* s, const char* field) {
  gboolean v = FALSE;
  EXPECT_TRUE(gst_structure_get_boolean(s, field, &v)) << field << " in " << gst_structure_to_string(s);
  return v != FALSE;
}

// `text` as a PCRE2 pattern that matches it literally (ASCII punctuation escaped).
std::string literal_pattern(const std::string& text) {
  std::string out;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x80 && !g_ascii_isalnum(c)) out += '\\';
    out += c;
  }
  return out;
}

// The answers (sync, greedy) about two different frames, in order: what the tiny model says.
std::vector<std::string> answers_without_alerts(const TestFrame& first, const TestFrame& second) {
  Rig rig("mode=sync temperature=0 max-new-tokens=4 interval=0");
  gst_harness_set_src_caps_str(rig.video, first.caps("10/1").c_str());
  std::vector<std::string> texts;
  for (const TestFrame* f : {&first, &second}) {
    GstBuffer* out = rig.push_pull(f->buffer(texts.size() * kFrame, kFrame));
    EXPECT_NE(out, nullptr);
    if (out == nullptr) return texts;
    const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
    EXPECT_NE(meta, nullptr);
    if (meta != nullptr) {
      texts.push_back(str(meta, GST_QWENVL_FIELD_TEXT));
      EXPECT_FALSE(flag(meta, GST_QWENVL_FIELD_ALERT)) << "no alert-when: no alert";
    }
    gst_buffer_unref(out);
  }
  std::vector<GstStructure*> alerts = rig.messages("qwenvl-alert");
  EXPECT_TRUE(alerts.empty());
  free_all(alerts);
  return texts;
}

// Every message on `bus` so far, in order (the caller unrefs them).
std::vector<GstMessage*> bus_messages(GstBus* bus) {
  std::vector<GstMessage*> out;
  while (GstMessage* m = gst_bus_pop(bus)) out.push_back(m);
  return out;
}

std::vector<std::string> element_message_names(const std::vector<GstMessage*>& messages) {
  std::vector<std::string> names;
  for (GstMessage* m : messages)
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT) names.push_back(gst_structure_get_name(gst_message_get_structure(m)));
  return names;
}

const GstStructure* first_named(const std::vector<GstMessage*>& messages, const char* name) {
  for (GstMessage* m : messages)
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && gst_structure_has_name(gst_message_get_structure(m), name))
      return gst_message_get_structure(m);
  return nullptr;
}

void unref_all(std::vector<GstMessage*>& messages) {
  for (GstMessage* m : messages) gst_message_unref(m);
  messages.clear();
}

// The texts of the error (or warning) messages among `messages`, joined by " | ".
std::string problems(const std::vector<GstMessage*>& messages, GstMessageType type) {
  std::string out;
  for (GstMessage* m : messages) {
    if (GST_MESSAGE_TYPE(m) != type) continue;
    GError* error = nullptr;
    if (type == GST_MESSAGE_ERROR) gst_message_parse_error(m, &error, nullptr);
    else gst_message_parse_warning(m, &error, nullptr);
    out += (out.empty() ? "" : " | ") + std::string(error != nullptr ? error->message : "");
    g_clear_error(&error);
  }
  return out;
}

TEST(ElementAlert, OnlyTheMatchingAnswerAlerts) {
  const TestFrame first = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 0);
  const TestFrame second = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 1);
  const std::vector<std::string> texts = answers_without_alerts(first, second);
  ASSERT_EQ(texts.size(), 2u);
  ASSERT_NE(texts[0], texts[1]) << "the test needs two different answers from the fixture model";
  ASSERT_TRUE(g_utf8_validate(texts[0].data(), static_cast<gssize>(texts[0].size()), nullptr))
      << "the test turns the first answer into a pattern, which must be UTF-8";

  // An alert on exactly the first answer, set on the running element as an application would.
  const std::string condition = "regex:^" + literal_pattern(texts[0]) + "$";
  Rig rig("mode=sync temperature=0 max-new-tokens=4 interval=0 stream-id=cam1");
  g_object_set(rig.element, "alert-when", condition.c_str(), nullptr);
  gst_harness_set_src_caps_str(rig.video, first.caps("10/1").c_str());
  std::vector<GstStructure*> metas;
  for (const TestFrame* f : {&first, &second}) {
    GstBuffer* out = rig.push_pull(f->buffer(metas.size() * kFrame, kFrame));
    ASSERT_NE(out, nullptr);
    ASSERT_EQ(gst_buffer_count_qwenvl_meta(out), 1u);
    metas.push_back(gst_structure_copy(gst_buffer_get_qwenvl_meta(out)));
    gst_buffer_unref(out);
  }
  EXPECT_EQ(str(metas[0], GST_QWENVL_FIELD_TEXT), texts[0]);
  EXPECT_TRUE(flag(metas[0], GST_QWENVL_FIELD_ALERT));
  EXPECT_FALSE(flag(metas[1], GST_QWENVL_FIELD_ALERT));
  ASSERT_EQ(rig.signalled.size(), 2u);
  EXPECT_TRUE(flag(rig.signalled[0], GST_QWENVL_FIELD_ALERT));
  EXPECT_FALSE(flag(rig.signalled[1], GST_QWENVL_FIELD_ALERT));

  std::vector<GstMessage*> messages = bus_messages(rig.bus);
  EXPECT_EQ(element_message_names(messages), (std::vector<std::string>{"qwenvl-result", "qwenvl-alert", "qwenvl-result"}));
  const GstStructure* alert = first_named(messages, "qwenvl-alert");
  ASSERT_NE(alert, nullptr);
  EXPECT_EQ(str(alert, GST_QWENVL_FIELD_TEXT), texts[0]);
  EXPECT_EQ(str(alert, GST_QWENVL_FIELD_STREAM_ID), "cam1");
  EXPECT_EQ(u64(alert, GST_QWENVL_FIELD_PTS), 0u);
  EXPECT_EQ(u64(alert, GST_QWENVL_FIELD_REQUEST_ID), u64(metas[0], GST_QWENVL_FIELD_REQUEST_ID));
  EXPECT_EQ(str(alert, "alert-when"), condition);
  EXPECT_TRUE(flag(alert, GST_QWENVL_FIELD_ALERT));
  // The result messages agree with the metas, alert included.
  size_t results = 0;
  for (GstMessage* m : messages) {
    const GstStructure* s = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && gst_structure_has_name(s, "qwenvl-result") && results < metas.size()) {
      EXPECT_TRUE(same_fields(metas[results++], s));
    }
  }
  EXPECT_EQ(results, 2u);
  unref_all(messages);
  free_all(metas);
}

TEST(ElementAlert, FieldConditionsNeverMatchAnswersThatAreNotJson) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_NV12, 26, 18, 4, 1);
  Rig rig("mode=sync temperature=0 max-new-tokens=4 interval=0 alert-when=field:people>=0");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  for (int i = 0; i < 2; ++i) {
    GstBuffer* out = rig.push_pull(frame.buffer(i * kFrame, kFrame));
    ASSERT_NE(out, nullptr);
    const GstStructure* meta = gst_buffer_get_qwenvl_meta(out);
    ASSERT_NE(meta, nullptr);
    EXPECT_FALSE(flag(meta, GST_QWENVL_FIELD_ALERT)) << "the tiny model writes no JSON: " << str(meta, GST_QWENVL_FIELD_TEXT);
    gst_buffer_unref(out);
  }
  std::vector<GstMessage*> messages = bus_messages(rig.bus);
  EXPECT_EQ(element_message_names(messages), (std::vector<std::string>{"qwenvl-result", "qwenvl-result"}));
  unref_all(messages);
}

TEST(ElementAlert, ABadConditionStopsTheElementFromStarting) {
  init_gst();
  GstElement* element = gst_element_factory_make("qwenvl", nullptr);
  ASSERT_NE(element, nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(element, bus);
  g_object_set(element, "model", tiny_a().c_str(), "alert-when", "field:people=3", nullptr);
  gchar* read_back = nullptr;
  g_object_get(element, "alert-when", &read_back, nullptr);
  EXPECT_STREQ(read_back, "field:people=3") << "read back as set";
  g_free(read_back);

  // NULL->READY: refused before the model is loaded.
  EXPECT_EQ(gst_element_set_state(element, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
  std::vector<GstMessage*> messages = bus_messages(bus);
  const std::string error = problems(messages, GST_MESSAGE_ERROR);
  EXPECT_NE(error.find("alert-when 'field:people=3': unknown operator '=' (use ==)"), std::string::npos) << error;
  unref_all(messages);

  // Fixed, the element starts; broken again while READY, READY->PAUSED refuses.
  g_object_set(element, "alert-when", "field:people==3", nullptr);
  ASSERT_EQ(gst_element_set_state(element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  g_object_set(element, "alert-when", "regex:(unclosed", nullptr);
  EXPECT_EQ(gst_element_set_state(element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  messages = bus_messages(bus);
  const std::string paused_error = problems(messages, GST_MESSAGE_ERROR);
  EXPECT_NE(paused_error.find("alert-when 'regex:(unclosed': bad regex"), std::string::npos) << paused_error;
  unref_all(messages);

  gst_element_set_state(element, GST_STATE_NULL);
  gst_element_set_bus(element, nullptr);
  gst_object_unref(bus);
  gst_object_unref(element);
}

TEST(ElementAlert, ABadConditionSetWhileRunningWarnsAndAlertsNothing) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 16, 16, 0, 0);
  Rig rig("mode=sync temperature=0 max-new-tokens=2 interval=0 alert-when=regex:^");
  gst_harness_set_src_caps_str(rig.video, frame.caps("10/1").c_str());
  GstBuffer* out = rig.push_pull(frame.buffer(0, kFrame));
  ASSERT_NE(out, nullptr);
  EXPECT_TRUE(flag(gst_buffer_get_qwenvl_meta(out), GST_QWENVL_FIELD_ALERT)) << "regex:^ matches every answer";
  gst_buffer_unref(out);
  std::vector<GstMessage*> messages = bus_messages(rig.bus);
  EXPECT_EQ(element_message_names(messages), (std::vector<std::string>{"qwenvl-result", "qwenvl-alert"}));
  unref_all(messages);

  g_object_set(rig.element, "alert-when", "field:a..b==1", nullptr);
  out = rig.push_pull(frame.buffer(kFrame, kFrame));
  ASSERT_NE(out, nullptr);
  EXPECT_FALSE(flag(gst_buffer_get_qwenvl_meta(out), GST_QWENVL_FIELD_ALERT));
  gst_buffer_unref(out);
  messages = bus_messages(rig.bus);
  const std::string warning = problems(messages, GST_MESSAGE_WARNING);
  EXPECT_NE(warning.find("alert-when 'field:a..b==1'"), std::string::npos) << warning;
  EXPECT_NE(warning.find("empty name"), std::string::npos) << warning;
  EXPECT_EQ(element_message_names(messages), (std::vector<std::string>{"qwenvl-result"}));
  unref_all(messages);
}

}  // namespace
}  // namespace qwenvl::test
