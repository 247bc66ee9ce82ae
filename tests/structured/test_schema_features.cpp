// The JSON-schema features constrained decoding supports: the listed ones pass, anything else is
// refused with the keyword and where it sits.
#include <gtest/gtest.h>

#include <string>

#include "../error_of.h"
#include "qwenvl/error.h"
#include "structured/schema_features.h"
#include "structured/token_constraint.h"

namespace qwenvl::structured {
namespace {

TEST(SchemaFeatures, AcceptsTheListedFeatures) {
  EXPECT_NO_THROW(check_schema_features(R"({
    "type": "object", "title": "scene", "additionalProperties": false, "required": ["people", "vehicle"],
    "properties": {
      "people": {"type": "integer", "minimum": 0, "maximum": 99},
      "vehicle": {"type": "boolean"},
      "score": {"type": "number", "minimum": 0, "maximum": 1},
      "label": {"type": "string", "maxLength": 12},
      "colour": {"type": "string", "enum": ["red", "green"]},
      "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 3},
      "nothing": {"type": "null"},
      "where": {"type": "object", "properties": {"x": {"type": "integer"}}}
    }})"));
  EXPECT_NO_THROW(check_schema_features(R"({"enum": ["a", "b"]})"));
}

TEST(SchemaFeatures, RefusesWhatIsNotListedNamingIt) {
  const std::string pattern = test::error_of([] { check_schema_features(R"({"type": "string", "pattern": "a+"})"); });
  EXPECT_NE(pattern.find("'pattern'"), std::string::npos) << pattern;
  const std::string nested = test::error_of([] {
    check_schema_features(R"({"type": "object", "properties": {"a": {"anyOf": [{"type": "null"}]}}})");
  });
  EXPECT_NE(nested.find("/properties/a"), std::string::npos) << nested;
  EXPECT_THROW(check_schema_features(R"({"type": "object", "additionalProperties": true})"), Error);
  EXPECT_THROW(check_schema_features(R"({"type": "array"})"), Error);
  EXPECT_THROW(check_schema_features(R"({"type": "object", "required": ["x"]})"), Error);
  EXPECT_THROW(check_schema_features("{not json"), Error);
}

// Found by fuzz_json_schema (2026-12-06, corpus regression-07bd60f7): a number past a double's
// range escaped as nlohmann's out_of_range where only parse errors were caught.
TEST(SchemaFeatures, ANumberPastADoubleIsAnErrorNotAnEscape) {
  EXPECT_THROW(check_schema_features(R"({"type": "integer", "minimum": 1e999})"), Error);
  EXPECT_THROW(check_schema_features(R"({"type": "array", "items": {"type": "number"}, "maxItems": 6e400})"), Error);
}

TEST(ConstraintRequest, RefusesContradictions) {
  SamplingParams both;
  both.json_schema = R"({"type": "boolean"})";
  both.choices = {"yes"};
  EXPECT_THROW(check_constraint_request(both), Error);
  SamplingParams empty_choice;
  empty_choice.choices = {"yes", ""};
  EXPECT_THROW(check_constraint_request(empty_choice), Error);
  SamplingParams past_eos;
  past_eos.choices = {"yes"};
  past_eos.ignore_eos = true;
  EXPECT_THROW(check_constraint_request(past_eos), Error);
  EXPECT_FALSE(check_constraint_request(SamplingParams{}));
  SamplingParams choices;
  choices.choices = {"yes", "no"};
  EXPECT_TRUE(check_constraint_request(choices));
}

}  // namespace
}  // namespace qwenvl::structured
