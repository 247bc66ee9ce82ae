// Numbers in the pinned grammar have at most 16 significant digits: each range is closed before
// xgrammar sees the schema (the schema's own tighter bounds kept), a range wholly past the bound is
// refused with the reason, and a walk through the grammar over Qwen2's real vocabulary that always
// prefers another digit ends every number at the bound and still completes the document.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <string>
#include <vector>

#include "../error_of.h"
#include "../test_util.h"
#include "qwenvl/error.h"
#include "structured/number_bounds.h"
#include "structured/schema_features.h"
#include "structured/token_constraint.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl::structured {
namespace {

using json = nlohmann::ordered_json;

TEST(NumberBounds, ClosesEveryRangeAndKeepsTighterBoundsAndTheOrder) {
  const json bounded = json::parse(bound_number_ranges(R"({"type":"object","properties":{
      "z":{"type":"integer"},
      "a":{"type":"number","minimum":-2.5},
      "m":{"type":"array","items":{"type":"integer","minimum":3,"maximum":1e20}},
      "e":{"type":"number","enum":[1e300]}}})"));
  std::vector<std::string> order;
  for (const auto& [name, sub] : bounded["properties"].items()) order.push_back(name);
  EXPECT_EQ(order, (std::vector<std::string>{"z", "a", "m", "e"})) << "properties keep the schema's order";
  EXPECT_EQ(bounded["properties"]["z"]["minimum"], -kIntegerLimit);
  EXPECT_EQ(bounded["properties"]["z"]["maximum"], kIntegerLimit);
  EXPECT_EQ(bounded["properties"]["a"]["minimum"], -2.5);
  EXPECT_EQ(bounded["properties"]["a"]["maximum"], kNumberLimit);
  EXPECT_EQ(bounded["properties"]["m"]["items"]["minimum"], 3);
  EXPECT_EQ(bounded["properties"]["m"]["items"]["maximum"], kIntegerLimit);
  EXPECT_FALSE(bounded["properties"]["e"].contains("maximum")) << "an enum is a finite list already";
}

TEST(NumberBounds, ARangeWhollyPastTheBoundIsRefusedWithTheReason) {
  const std::string past = test::error_of([] { check_schema_features(R"({"type":"integer","minimum":1e17})"); });
  EXPECT_NE(past.find("9999999999999999"), std::string::npos) << past;
  EXPECT_THROW(check_schema_features(R"({"type":"number","maximum":-1e11})"), Error);
  EXPECT_THROW(check_schema_features(R"({"type":"number","minimum":"0"})"), Error);
  EXPECT_NO_THROW(check_schema_features(R"({"type":"number","minimum":-1e11,"maximum":1e300})"))
      << "a range that meets the bound is closed, not refused";
}

// Significant digits of a JSON number's text (digits of its mantissa, leading zeros not counted).
int significant_digits(const std::string& number) {
  std::string digits;
  for (char c : number)
    if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
  const size_t first = digits.find_first_not_of('0');
  return first == std::string::npos ? 1 : static_cast<int>(digits.size() - first);
}

// The number literals of a compact JSON document, as written.
std::vector<std::string> number_texts(const std::string& doc) {
  std::vector<std::string> out;
  bool in_string = false;
  for (size_t i = 0; i < doc.size(); ++i) {
    const char c = doc[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      size_t end = i;
      while (end < doc.size() && std::string("-+.eE0123456789").find(doc[end]) != std::string::npos) ++end;
      out.push_back(doc.substr(i, end - i));
      i = end - 1;
    }
  }
  return out;
}

class DigitGreedyWalk : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tokenizer_ = new model::Tokenizer(model::Tokenizer::from_model_dir(test::fixtures_dir() / "models" / "tiny-a"));
  }
  static void TearDownTestSuite() { delete tokenizer_; }

  // Walks `schema`'s grammar choosing, at each step, the first allowed token of `preferred` (token
  // texts, e.g. a digit before anything else), else EOS, else the lowest allowed id; the document.
  std::string walk(const std::string& schema, const std::vector<std::string>& preferred) {
    ConstraintCompiler compiler(*tokenizer_, tokenizer_->vocab_size());
    const int32_t eos = *tokenizer_->token_to_id("<|im_end|>");
    SamplingParams params;
    params.json_schema = schema;
    auto constraint = compiler.compile(params, {eos});
    std::vector<int32_t> preferred_ids;
    for (const auto& text : preferred) preferred_ids.push_back(tokenizer_->encode(text).at(0));
    std::vector<int32_t> words(static_cast<size_t>(mask_words(tokenizer_->vocab_size())));
    auto allowed = [&](int32_t id) { return (words[static_cast<size_t>(id / 32)] >> (id % 32) & 1) != 0; };
    std::string doc;
    for (int step = 0; step < 400 && !constraint->complete(); ++step) {
      constraint->fill_mask(words.data());
      int32_t pick = -1;
      for (int32_t id : preferred_ids)
        if (pick < 0 && allowed(id)) pick = id;
      if (pick < 0 && allowed(eos)) pick = eos;
      for (int32_t id = 0; pick < 0 && id < tokenizer_->vocab_size(); ++id)
        if (allowed(id)) pick = id;
      if (pick < 0) {
        ADD_FAILURE() << "nothing allowed after " << doc;
        return doc;
      }
      EXPECT_TRUE(constraint->accept(pick));
      if (pick != eos) tokenizer_->append_token_bytes(pick, /*skip_special_tokens=*/true, doc);
    }
    EXPECT_TRUE(constraint->complete()) << "the walk must end the document: " << doc;
    return doc;
  }

  static model::Tokenizer* tokenizer_;
};
model::Tokenizer* DigitGreedyWalk::tokenizer_ = nullptr;

const std::vector<std::string> kNines = {"9", "."};           // the largest digits, a decimal point when no digit fits
const std::vector<std::string> kNegative = {"-", "9", "."};  // the same, below zero
const std::vector<std::string> kOnes = {"1", "."};            // digits that fit on both sides of the point
const std::vector<std::string> kNegativeOnes = {"-", "1", "."};

TEST_F(DigitGreedyWalk, AnUnboundedNumberEndsAtSixteenDigits) {
  EXPECT_EQ(walk(R"({"type":"integer"})", kNines), "9999999999999999");
  EXPECT_EQ(walk(R"({"type":"integer"})", kNegative), "-9999999999999999");
  EXPECT_EQ(walk(R"({"type":"number"})", kOnes), "1111111111.111111") << "10 integer digits and 6 decimals";
  EXPECT_EQ(walk(R"({"type":"number"})", kNegativeOnes), "-1111111111.111111");
  EXPECT_EQ(walk(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":2})", kNines),
            "[9999999999999999,9999999999999999]");
}

TEST_F(DigitGreedyWalk, TheSchemasBoundsStillHoldAndEveryNumberHasAtMostSixteenDigits) {
  const std::string text = walk(
      R"({"type":"object","properties":{"n":{"type":"integer","minimum":0},"x":{"type":"number","maximum":100.5},"y":{"type":"number","minimum":-3}},"required":["n","x","y"]})",
      kNegative);
  const json doc = json::parse(text);
  EXPECT_EQ(doc["n"].get<int64_t>(), kIntegerLimit) << "no minus under a minimum of 0: the largest 16-digit integer";
  EXPECT_EQ(doc["x"].get<double>(), -9999999999.0) << text;
  const double y = doc["y"].get<double>();
  EXPECT_TRUE(y >= -3.0 && y < 0) << text;
  for (const auto& number : number_texts(text)) EXPECT_LE(significant_digits(number), 16) << number;
}

}  // namespace
}  // namespace qwenvl::structured
