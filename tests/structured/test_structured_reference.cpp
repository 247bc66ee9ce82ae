// The engine's constrained greedy answers against an independent implementation: llguidance masking
// transformers' logits on tiny-b with the same pinned grammar (scripts/fixtures/structured_cases.py):
// the same ids and text, and a cut answer marked incomplete. One known difference of design: where
// the grammar forces the next bytes (a property name), llguidance allows only their canonical
// tokenization (e.g. "ve" but not "v" before "hicle"), xgrammar every tokenization; there the
// greedy paths may part. Such a case must part exactly there (the two tokens spell the same bytes,
// one a prefix of the other) and still end, like the reference, in a complete JSON document.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "../test_util.h"
#include "qwenvl/engine.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl {
namespace {

TEST(StructuredReference, GreedyConstrainedIdsMatchLlguidanceOverTransformers) {
  const auto reference =
      nlohmann::json::parse(test::read_text(test::fixtures_dir() / "reference" / "structured_cases.json"));
  EngineOptions o;
  o.model_dir = (test::fixtures_dir() / "models" / reference.at("model").get<std::string>()).string();
  auto engine = Engine::create(o);
  const model::Tokenizer tokenizer = model::Tokenizer::from_model_dir(o.model_dir);
  size_t parted = 0;
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
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(result.incomplete, !c.at("complete").get<bool>()) << name;
    if (result.token_ids != ids && c.contains("json_schema") && c.at("complete").get<bool>()) {
      size_t at = 0;
      while (at < ids.size() && at < result.token_ids.size() && ids[at] == result.token_ids[at]) ++at;
      ASSERT_LT(at, std::min(ids.size(), result.token_ids.size())) << name;
      const std::string ours = tokenizer.id_to_token(result.token_ids[at]), theirs = tokenizer.id_to_token(ids[at]);
      EXPECT_TRUE(theirs.rfind(ours, 0) == 0 || ours.rfind(theirs, 0) == 0)
          << name << ": parted at " << at << " on '" << ours << "' against '" << theirs << "', not a tokenization of the same bytes";
      EXPECT_NO_THROW((void)nlohmann::json::parse(result.text)) << name << ": " << result.text;
      ++parted;
      continue;
    }
    EXPECT_EQ(result.token_ids, ids) << name;
    EXPECT_EQ(result.text, c.at("text").get<std::string>()) << name;
    EXPECT_EQ(result.finish_reason, c.at("complete").get<bool>() ? "eos" : "length") << name;
  }
  EXPECT_LT(parted * 2, reference.at("cases").size()) << "most cases must give the reference's ids";
}

}  // namespace
}  // namespace qwenvl
