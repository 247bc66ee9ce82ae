// The engine's constrained greedy answers against an independent implementation: llguidance masking
// transformers' logits on tiny-b with the same pinned grammar (scripts/fixtures/structured_cases.py).
// Same ids, same text, and a cut answer marked incomplete.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "../test_util.h"
#include "qwenvl/engine.h"

namespace qwenvl {
namespace {

TEST(StructuredReference, GreedyConstrainedIdsMatchLlguidanceOverTransformers) {
  const auto reference =
      nlohmann::json::parse(test::read_text(test::fixtures_dir() / "reference" / "structured_cases.json"));
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / reference.at("model").get<std::string>()).string();
  auto engine = Engine::create(o);
  ASSERT_FALSE(reference.at("cases").empty());
  for (const auto& c : reference.at("cases")) {
    const std::string name = c.at("name");
    Request r;
    r.prompt = c.at("prompt");
    r.sampling.temperature = 0.0;
    r.sampling.repetition_penalty = 1.0;
    r.sampling.max_new_tokens = c.at("max_new_tokens").get<int>();
    if (c.contains("json_schema")) r.sampling.json_schema = c.at("json_schema");
    if (c.contains("choices")) r.sampling.choices = c.at("choices").get<std::vector<std::string>>();
    const Result result = engine->submit(std::move(r)).result.get();
    ASSERT_EQ(result.status, Status::kAnswered) << name << ": " << result.error;
    EXPECT_EQ(result.token_ids, c.at("ids").get<std::vector<int32_t>>()) << name;
    EXPECT_EQ(result.text, c.at("text").get<std::string>()) << name;
    EXPECT_EQ(result.incomplete, !c.at("complete").get<bool>()) << name;
    EXPECT_EQ(result.finish_reason, c.at("complete").get<bool>() ? "eos" : "length") << name;
  }
}

}  // namespace
}  // namespace qwenvl
