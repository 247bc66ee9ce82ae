// A json-schema answer as GStreamer values: nested objects as GstStructures, arrays as
// GstValueArrays, scalars as themselves, so that a pad probe reads fields without a JSON parser.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include "json_answer.h"

namespace qwenvl::gst {
namespace {

TEST(JsonAnswer, ObjectsNestAsStructuresArraysAsValueArrays) {
  gst_init(nullptr, nullptr);
  GValue v = G_VALUE_INIT;
  ASSERT_TRUE(json_answer_value(R"({"people":3,"vehicle":true,"score":0.5,"label":"car","where":{"x":-2},"tags":[1,2],"none":null})", &v));
  ASSERT_TRUE(GST_VALUE_HOLDS_STRUCTURE(&v));
  const GstStructure* s = gst_value_get_structure(&v);
  gint64 people = 0;
  ASSERT_TRUE(gst_structure_get_int64(s, "people", &people));
  EXPECT_EQ(people, 3);
  gboolean vehicle = FALSE;
  ASSERT_TRUE(gst_structure_get_boolean(s, "vehicle", &vehicle));
  EXPECT_TRUE(vehicle);
  gdouble score = 0;
  ASSERT_TRUE(gst_structure_get_double(s, "score", &score));
  EXPECT_EQ(score, 0.5);
  EXPECT_STREQ(gst_structure_get_string(s, "label"), "car");
  const GValue* where = gst_structure_get_value(s, "where");
  ASSERT_TRUE(where && GST_VALUE_HOLDS_STRUCTURE(where));
  gint64 x = 0;
  ASSERT_TRUE(gst_structure_get_int64(gst_value_get_structure(where), "x", &x));
  EXPECT_EQ(x, -2);
  const GValue* tags = gst_structure_get_value(s, "tags");
  ASSERT_TRUE(tags && GST_VALUE_HOLDS_ARRAY(tags));
  ASSERT_EQ(gst_value_array_get_size(tags), 2u);
  EXPECT_EQ(g_value_get_int64(gst_value_array_get_value(tags, 1)), 2);
  const GValue* none = gst_structure_get_value(s, "none");
  ASSERT_TRUE(none && G_VALUE_HOLDS_STRING(none));
  EXPECT_EQ(g_value_get_string(none), nullptr);
  g_value_unset(&v);
}

TEST(JsonAnswer, ScalarsAndNonJson) {
  GValue v = G_VALUE_INIT;
  ASSERT_TRUE(json_answer_value("\"red\"", &v));
  EXPECT_STREQ(g_value_get_string(&v), "red");
  g_value_unset(&v);
  EXPECT_FALSE(json_answer_value("{\"cut", &v));
  EXPECT_FALSE(G_IS_VALUE(&v));
}

}  // namespace
}  // namespace qwenvl::gst
