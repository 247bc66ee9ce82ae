// json-schema (inline and @FILE) and choices on the element: a schema answer is the engine API's
// answer and rides parsed as `answer` (a GstStructure) on the meta and the qwenvl-result message
// beside its text; a cut answer is marked incomplete and carries no `answer`; a choices answer is
// exactly one of the choices. A schema the engine does not support (or cannot read, or beside choices)
// stops the element from starting with an error naming the property and the fault; set on a running
// element, it fails each request with the reason (a warning and a qwenvl-failed message) while buffers
// keep flowing.
#include <glib/gstdio.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "element_rig.h"

namespace qwenvl::test {
namespace {

constexpr GstClockTime kFrame = GST_SECOND / 10;
const char* const kSchema =
    R"({"type":"object","properties":{"people":{"type":"integer","minimum":0,"maximum":20},"vehicle":{"type":"boolean"}},"required":["people","vehicle"]})";

bool flag(const GstStructure* s, const char* field) {
  gboolean v = FALSE;
  EXPECT_TRUE(gst_structure_get_boolean(s, field, &v)) << field << " in " << gst_structure_to_string(s);
  return v != FALSE;
}

// A sync element asked greedily about every frame with `schema`, its caps those of `frame`.
std::unique_ptr<Rig> schema_rig(const char* schema, int max_new_tokens, const TestFrame& frame) {
  auto rig = std::make_unique<Rig>("mode=sync temperature=0 interval=0 prompt=Count. max-new-tokens=" +
                                   std::to_string(max_new_tokens));
  g_object_set(rig->element, "json-schema", schema, nullptr);
  gst_harness_set_src_caps_str(rig->video, frame.caps("10/1").c_str());
  return rig;
}

// What a pad probe reads from a json-schema answer: the parsed fields, no JSON parser needed; they
// agree with the text.
void expect_parsed_answer(const GstStructure* s) {
  const std::string text = str(s, GST_QWENVL_FIELD_TEXT);
  const nlohmann::json doc = nlohmann::json::parse(text);
  const GValue* answer = gst_structure_get_value(s, GST_QWENVL_FIELD_ANSWER);
  ASSERT_TRUE(answer != nullptr && GST_VALUE_HOLDS_STRUCTURE(answer)) << gst_structure_to_string(s);
  gint64 people = -1;
  ASSERT_TRUE(gst_structure_get_int64(gst_value_get_structure(answer), "people", &people)) << text;
  EXPECT_EQ(people, doc.at("people").get<int64_t>());
  gboolean vehicle = FALSE;
  ASSERT_TRUE(gst_structure_get_boolean(gst_value_get_structure(answer), "vehicle", &vehicle)) << text;
  EXPECT_EQ(vehicle != FALSE, doc.at("vehicle").get<bool>());
}

TEST(ElementConstrained, SchemaAnswerRidesParsedOnTheMetaAndTheMessage) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 0);
  const auto rig = schema_rig(kSchema, 40, frame);
  GstStructure* meta = rig->answer_of(frame, 0);
  ASSERT_NE(meta, nullptr);
  EXPECT_FALSE(flag(meta, GST_QWENVL_FIELD_INCOMPLETE));
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_FINISH_REASON), "eos");
  expect_parsed_answer(meta);
  std::vector<GstStructure*> messages = rig->messages("qwenvl-result");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(same_fields(meta, messages[0])) << "the message carries the same answer, parsed too";
  ASSERT_EQ(rig->signalled.size(), 1u);
  EXPECT_TRUE(same_fields(meta, rig->signalled[0]));

  Request request;  // the engine API's answer to the same constrained question
  request.images.push_back(frame.view());
  request.prompt = "Count.";
  request.sampling.json_schema = kSchema;
  const Result direct = ask_engine(std::move(request), 40);
  ASSERT_EQ(direct.status, Status::kAnswered) << direct.error;
  EXPECT_EQ(token_ids(meta), direct.token_ids);
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_TEXT), direct.text);
  free_all(messages);
  gst_structure_free(meta);
}

TEST(ElementConstrained, SchemaFromAFileGivesTheInlineSchemasAnswer) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 1);
  gchar* path = nullptr;
  const gint fd = g_file_open_tmp("qwenvl-schema-XXXXXX.json", &path, nullptr);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_TRUE(g_file_set_contents(path, kSchema, -1, nullptr));
  const std::string property = std::string("@") + path;

  std::string texts[2];
  for (int i = 0; i < 2; ++i) {
    const auto rig = schema_rig(i == 0 ? kSchema : property.c_str(), 40, frame);
    if (i == 1) {
      gchar* read_back = nullptr;
      g_object_get(rig->element, "json-schema", &read_back, nullptr);
      EXPECT_EQ(std::string(read_back ? read_back : ""), property) << "the property reads back as set";
      g_free(read_back);
    }
    GstStructure* meta = rig->answer_of(frame, 0);
    ASSERT_NE(meta, nullptr);
    expect_parsed_answer(meta);
    texts[i] = str(meta, GST_QWENVL_FIELD_TEXT);
    gst_structure_free(meta);
  }
  EXPECT_EQ(texts[1], texts[0]);
  g_unlink(path);
  g_free(path);
}

TEST(ElementConstrained, ACutSchemaAnswerIsMarkedIncompleteAndNotParsed) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 0);
  GstStructure* meta = schema_rig(kSchema, 2, frame)->answer_of(frame, 0);
  ASSERT_NE(meta, nullptr);
  EXPECT_TRUE(flag(meta, GST_QWENVL_FIELD_INCOMPLETE));
  EXPECT_EQ(str(meta, GST_QWENVL_FIELD_FINISH_REASON), "length");
  EXPECT_FALSE(gst_structure_has_field(meta, GST_QWENVL_FIELD_ANSWER));
  gst_structure_free(meta);
}

TEST(ElementConstrained, ChoicesAnswerIsExactlyOneChoice) {
  const std::vector<std::string> choices = {"yes", "a person, walking", "no"};
  // Sampled hot, so that noise would show: the mask alone keeps each answer one of the choices.
  Rig rig("mode=sync temperature=2 seed=7 max-new-tokens=16 interval=0 prompt=Anyone?");
  gst_util_set_object_arg(G_OBJECT(rig.element), "choices", R"(<"yes", "a person, walking", "no">)");
  GValue read_back = G_VALUE_INIT;
  g_value_init(&read_back, GST_TYPE_ARRAY);
  g_object_get_property(G_OBJECT(rig.element), "choices", &read_back);
  ASSERT_EQ(gst_value_array_get_size(&read_back), 3u);
  EXPECT_STREQ(g_value_get_string(gst_value_array_get_value(&read_back, 1)), "a person, walking") << "commas stay inside a choice";
  g_value_unset(&read_back);
  gst_harness_set_src_caps_str(rig.video, make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 0).caps("10/1").c_str());
  for (int i = 0; i < 4; ++i) {
    GstStructure* meta = rig.answer_of(make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, i), i * kFrame);
    ASSERT_NE(meta, nullptr);
    const std::string text = str(meta, GST_QWENVL_FIELD_TEXT);
    EXPECT_NE(std::find(choices.begin(), choices.end(), text), choices.end()) << text;
    EXPECT_FALSE(flag(meta, GST_QWENVL_FIELD_INCOMPLETE));
    EXPECT_FALSE(gst_structure_has_field(meta, GST_QWENVL_FIELD_ANSWER)) << "a choice is text, not a document";
    gst_structure_free(meta);
  }
}

// The texts of the error messages on `bus` so far, joined by " | ".
std::string bus_errors(GstBus* bus) {
  std::string out;
  while (GstMessage* m = gst_bus_pop(bus)) {
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* error = nullptr;
      gst_message_parse_error(m, &error, nullptr);
      out += (out.empty() ? "" : " | ") + std::string(error != nullptr ? error->message : "");
      g_clear_error(&error);
    }
    gst_message_unref(m);
  }
  return out;
}

// An element on the tiny-a model with a bus, outside any harness (which asserts that it starts).
struct Bare {
  GstElement* element = nullptr;
  GstBus* bus = nullptr;
  Bare() {
    init_gst();
    element = gst_element_factory_make("qwenvl", nullptr);
    if (element == nullptr) throw std::runtime_error("no qwenvl element: is GST_PLUGIN_PATH the build tree's gst-plugin?");
    g_object_set(element, "model", tiny_a().c_str(), nullptr);
    bus = gst_bus_new();
    gst_element_set_bus(element, bus);
  }
  ~Bare() {
    gst_element_set_state(element, GST_STATE_NULL);
    gst_element_set_bus(element, nullptr);
    gst_object_unref(bus);
    gst_object_unref(element);
  }
  Bare(const Bare&) = delete;
  Bare& operator=(const Bare&) = delete;
};

TEST(ElementConstrained, ABadSchemaStopsTheElementFromStarting) {
  gchar* dir = g_dir_make_tmp("qwenvl-schema-XXXXXX", nullptr);
  ASSERT_NE(dir, nullptr);
  const std::string not_json = std::string(dir) + "/not.json", missing = std::string(dir) + "/missing.json";
  ASSERT_TRUE(g_file_set_contents(not_json.c_str(), R"({"type":"object")", -1, nullptr));
  struct Case {
    std::string value, fault;
  };
  const std::vector<Case> cases = {
      {R"({"type":"string","pattern":"[a-z]+"})", "unsupported keyword 'pattern' for type string at /"},
      {R"({"type":"object","properties":{"n":{"type":"integer","minimum":100000000000000000}}})",
       "the range lies past the pinned grammar's bound for integers"},
      {R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["m"]})",
       "required names a property the schema does not define"},
      {R"({"type":"string","minLength":5,"maxLength":2})", "json-schema refused: json_schema: minLength 5 is greater than maxLength 2"},
      {R"({"type":"object")", "json_schema is not JSON"},
      {"@" + not_json, "json_schema is not JSON"},
      {"@" + missing, "cannot read " + missing},
  };
  for (const Case& c : cases) {
    Bare bare;
    g_object_set(bare.element, "json-schema", c.value.c_str(), nullptr);
    // NULL->READY: refused before the model is loaded, with the property and the fault named.
    EXPECT_EQ(gst_element_set_state(bare.element, GST_STATE_READY), GST_STATE_CHANGE_FAILURE) << c.value;
    const std::string error = bus_errors(bare.bus);
    EXPECT_NE(error.find("json-schema"), std::string::npos) << error;
    EXPECT_NE(error.find(c.fault), std::string::npos) << c.value << ": " << error;
    if (c.value[0] == '@') {
      EXPECT_NE(error.find("json-schema '" + c.value + "' refused"), std::string::npos) << error;
    }
  }
  g_unlink(not_json.c_str());
  g_rmdir(dir);
  g_free(dir);
}

TEST(ElementConstrained, ASchemaBrokenWhileReadyStopsThePausedTransition) {
  Bare bare;
  g_object_set(bare.element, "json-schema", kSchema, nullptr);
  ASSERT_EQ(gst_element_set_state(bare.element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS) << bus_errors(bare.bus);
  g_object_set(bare.element, "json-schema", R"({"type":"array","items":{"type":"string"},"uniqueItems":true})", nullptr);
  EXPECT_EQ(gst_element_set_state(bare.element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  const std::string error = bus_errors(bare.bus);
  EXPECT_NE(error.find("json-schema refused: json_schema: unsupported keyword 'uniqueItems' for type array"),
            std::string::npos)
      << error;
  g_object_set(bare.element, "json-schema", kSchema, nullptr);  // fixed, it starts
  EXPECT_NE(gst_element_set_state(bare.element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE) << bus_errors(bare.bus);
}

TEST(ElementConstrained, ChoicesBesideASchemaStopTheElementFromStarting) {
  Bare bare;
  g_object_set(bare.element, "json-schema", kSchema, nullptr);
  gst_util_set_object_arg(G_OBJECT(bare.element), "choices", R"(<"yes", "no">)");
  EXPECT_EQ(gst_element_set_state(bare.element, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
  const std::string error = bus_errors(bare.bus);
  EXPECT_NE(error.find("json-schema and choices refused: a request sets both json_schema and choices"), std::string::npos)
      << error;
  g_object_set(bare.element, "json-schema", "", nullptr);  // choices alone start
  EXPECT_EQ(gst_element_set_state(bare.element, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS) << bus_errors(bare.bus);
}

TEST(ElementConstrained, AnUnsupportedSchemaSetWhileRunningFailsEachRequestWithTheReason) {
  const TestFrame frame = make_frame(GST_VIDEO_FORMAT_RGB, 30, 22, 2, 0);
  const auto rig = schema_rig(R"({"type":"string","pattern":"[a-z]+"})", 8, frame);
  for (int i = 0; i < 2; ++i) {
    GstBuffer* out = rig->push_pull(frame.buffer(i * kFrame, kFrame));
    ASSERT_NE(out, nullptr) << "the frame still flows";
    EXPECT_EQ(gst_buffer_count_qwenvl_meta(out), 0u);
    gst_buffer_unref(out);
  }
  std::string warnings;
  size_t failed = 0;
  while (GstMessage* m = gst_bus_pop(rig->bus)) {
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_WARNING) {
      GError* error = nullptr;
      gst_message_parse_warning(m, &error, nullptr);
      warnings += error->message;
      g_clear_error(&error);
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && gst_structure_has_name(gst_message_get_structure(m), "qwenvl-failed")) {
      ++failed;
      const std::string why = str(gst_message_get_structure(m), "error");
      EXPECT_NE(why.find("'pattern'"), std::string::npos) << why;
    }
    gst_message_unref(m);
  }
  EXPECT_EQ(failed, 2u);
  EXPECT_NE(warnings.find("'pattern'"), std::string::npos) << warnings;
  EXPECT_EQ(rig->stat("failed"), 2u);
  EXPECT_TRUE(rig->signalled.empty());
}

}  // namespace
}  // namespace qwenvl::test
