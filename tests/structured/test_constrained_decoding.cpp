// Constrained decoding through the engine on the tiny-a fixture (random weights, which write noise
// unconstrained; Qwen2's real 151,643-token vocabulary, whose tokens span several JSON tokens):
// every complete answer is a document of its schema or one of the choices, greedy
// and sampled, with overlap_decode on and off; an unsupported schema is refused at submit; a cut
// answer ends with "length" and is marked incomplete.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <future>
#include <set>
#include <string>
#include <vector>

#include "../test_util.h"
#include "qwenvl/engine.h"

namespace qwenvl {
namespace {

using json = nlohmann::ordered_json;  // keys in document order: the grammar keeps the schema's

std::unique_ptr<Engine> make_engine(bool overlap) {
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / "tiny-a").string();
  o.max_batch = 8;
  o.max_context = 2048;
  o.overlap_decode = overlap;
  return Engine::create(o);
}

Request ask(const std::string& prompt, SamplingParams sampling) {
  Request r;
  r.prompt = prompt;
  r.sampling = std::move(sampling);
  return r;
}

// A document against the subset of JSON schema the engine supports (enough for these schemas).
void expect_valid(const json& doc, const json& schema, const std::string& where) {
  if (schema.contains("enum")) {
    EXPECT_NE(std::find(schema["enum"].begin(), schema["enum"].end(), doc), schema["enum"].end()) << where;
    return;
  }
  const std::string type = schema["type"];
  if (type == "object") {
    ASSERT_TRUE(doc.is_object()) << where;
    std::vector<std::string> order;  // the schema's order of the properties present
    for (const auto& [name, sub] : schema["properties"].items())
      if (doc.contains(name)) order.push_back(name);
    std::vector<std::string> keys;
    for (const auto& [name, value] : doc.items()) keys.push_back(name);
    EXPECT_EQ(keys, order) << where << ": properties in the schema's order, none it does not name";
    for (const auto& name : schema.value("required", json::array())) EXPECT_TRUE(doc.contains(name)) << where << "/" << name;
    for (const auto& [name, value] : doc.items())
      if (schema["properties"].contains(name)) expect_valid(value, schema["properties"][name], where + "/" + name);
  } else if (type == "array") {
    ASSERT_TRUE(doc.is_array()) << where;
    EXPECT_GE(doc.size(), schema.value("minItems", 0u)) << where;
    EXPECT_LE(doc.size(), schema.value("maxItems", 1000000u)) << where;
    for (const auto& item : doc) expect_valid(item, schema["items"], where + "[]");
  } else if (type == "string") {
    ASSERT_TRUE(doc.is_string()) << where;
  } else if (type == "integer") {
    ASSERT_TRUE(doc.is_number_integer()) << where;
    if (schema.contains("minimum")) EXPECT_GE(doc.get<int64_t>(), schema["minimum"].get<int64_t>()) << where;
    if (schema.contains("maximum")) EXPECT_LE(doc.get<int64_t>(), schema["maximum"].get<int64_t>()) << where;
  } else if (type == "number") {
    ASSERT_TRUE(doc.is_number()) << where;
  } else if (type == "boolean") {
    EXPECT_TRUE(doc.is_boolean()) << where;
  } else if (type == "null") {
    EXPECT_TRUE(doc.is_null()) << where;
  }
}

const std::vector<std::string> kSchemas = {
    R"({"type":"object","properties":{"people":{"type":"integer","minimum":0,"maximum":20},"vehicle":{"type":"boolean"}},"required":["people","vehicle"]})",
    R"({"type":"object","properties":{"label":{"type":"string","enum":["cat","dog","car"]},"tags":{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"minItems":1,"maxItems":3},"none":{"type":"null"}},"required":["label","tags","none"]})",
    R"({"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":2})",
    R"({"type":"object","properties":{"inner":{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}},"required":["inner"]})",
};

class ConstrainedDecoding : public ::testing::TestWithParam<bool> {};

TEST_P(ConstrainedDecoding, SchemaAnswersAreDocumentsOfTheSchema) {
  auto engine = make_engine(GetParam());
  std::vector<std::pair<json, std::future<Result>>> pending;
  for (const auto& schema : kSchemas)
    for (int variant = 0; variant < 3; ++variant) {
      SamplingParams p;
      p.json_schema = schema;
      p.max_new_tokens = 200;
      p.temperature = variant == 0 ? 0.0 : 1.5;  // greedy, and sampling that writes noise unconstrained
      p.top_k = 0;
      p.seed = static_cast<uint64_t>(variant);
      pending.emplace_back(json::parse(schema), engine->submit(ask("Count them. " + std::to_string(variant), p)).result);
    }
  for (auto& [schema, future] : pending) {
    const Result r = future.get();
    ASSERT_EQ(r.status, Status::kAnswered) << r.error;
    ASSERT_EQ(r.finish_reason, "eos") << r.text;
    EXPECT_FALSE(r.incomplete);
    json doc;
    ASSERT_NO_THROW(doc = json::parse(r.text)) << r.text;
    EXPECT_EQ(doc.dump(), r.text) << "the pinned grammar is compact JSON";
    expect_valid(doc, schema, "");
  }
}

TEST_P(ConstrainedDecoding, ChoiceAnswersAreExactlyOneChoice) {
  auto engine = make_engine(GetParam());
  const std::vector<std::string> choices = {"yes", "no", "a person, walking", "\"quoted\"\n"};
  for (int variant = 0; variant < 4; ++variant) {
    SamplingParams p;
    p.choices = choices;
    p.temperature = variant == 0 ? 0.0 : 2.0;
    p.seed = static_cast<uint64_t>(variant);
    const Result r = engine->submit(ask("Is anyone there?", p)).result.get();
    ASSERT_EQ(r.status, Status::kAnswered) << r.error;
    EXPECT_EQ(r.finish_reason, "eos");
    EXPECT_NE(std::find(choices.begin(), choices.end(), r.text), choices.end()) << r.text;
  }
}

INSTANTIATE_TEST_SUITE_P(Overlap, ConstrainedDecoding, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "overlap" : "no_overlap"; });

TEST(ConstrainedDecodingLimits, UnsupportedSchemaIsRefusedAtSubmitWithTheReason) {
  auto engine = make_engine(false);
  SamplingParams p;
  p.json_schema = R"({"type":"string","pattern":"[a-z]+"})";
  const Result r = engine->submit(ask("Name it.", p)).result.get();
  EXPECT_EQ(r.status, Status::kFailed);
  EXPECT_NE(r.error.find("pattern"), std::string::npos) << r.error;
  EXPECT_EQ(engine->stats().prefill_forwards, 0u) << "refused before any work";
}

TEST(ConstrainedDecodingLimits, ACutAnswerEndsWithLengthAndIsMarkedIncomplete) {
  auto engine = make_engine(false);
  SamplingParams p;
  p.json_schema = kSchemas[0];
  p.max_new_tokens = 2;
  const Result r = engine->submit(ask("Count them.", p)).result.get();
  ASSERT_EQ(r.status, Status::kAnswered) << r.error;
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_TRUE(r.incomplete);
  SamplingParams free;
  free.max_new_tokens = 2;
  EXPECT_FALSE(engine->submit(ask("Count them.", free)).result.get().incomplete) << "only constrained answers";
}

}  // namespace
}  // namespace qwenvl
