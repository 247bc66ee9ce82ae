// model::IncrementalDecoder: streamed text never holds a broken character, and the concatenation of
// all pushes and the flush equals the whole-sequence decode, which HF's reference gives.
#include "tokenizer/incremental_decoder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "test_util.h"
#include "tokenizer/utf8.h"

namespace qwenvl::model {
namespace {

using nlohmann::json;

const std::string kReplacement = "\xEF\xBF\xBD";

struct Streamed {
  std::string text;
  bool every_piece_valid = true;
};

Streamed stream(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool skip) {
  IncrementalDecoder decoder(tokenizer, skip);
  Streamed s;
  for (int32_t id : ids) {
    const std::string piece = decoder.push(id);
    s.every_piece_valid = s.every_piece_valid && utf8_is_valid(piece);
    s.text += piece;
  }
  const std::string tail = decoder.flush();
  s.every_piece_valid = s.every_piece_valid && utf8_is_valid(tail);
  s.text += tail;
  return s;
}

class IncrementalDecoderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto fixtures = test::fixtures_dir();
    reference_ = new json(json::parse(test::read_text(fixtures / "reference/tokenizer_qwen2.json")));
    tokenizer_ = new Tokenizer(Tokenizer::from_model_dir(fixtures / "tokenizers/qwen2"));
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete tokenizer_;
  }
  static json* reference_;
  static Tokenizer* tokenizer_;
};
json* IncrementalDecoderTest::reference_ = nullptr;
Tokenizer* IncrementalDecoderTest::tokenizer_ = nullptr;

// HF's decodes of random ids and of id slices that cut characters (scripts/fixtures/tokenizer_cases.py).
TEST_F(IncrementalDecoderTest, ConcatenationEqualsHFDecode) {
  size_t n = 0;
  for (const json& d : reference_->at("decodes")) {
    const auto ids = d.at("ids").get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      const Streamed s = stream(*tokenizer_, ids, skip);
      ASSERT_TRUE(s.every_piece_valid) << d.dump();
      ASSERT_EQ(s.text, d.at(skip ? "decoded_skip" : "decoded").get<std::string>()) << d.dump();
      ++n;
    }
  }
  EXPECT_GT(n, 7000u);
}

// Random id sequences, many ending inside a multi-byte character: stream == decode.
TEST_F(IncrementalDecoderTest, RandomSequencesEqualWholeDecode) {
  std::mt19937 rng(7);
  const auto vocab = static_cast<int32_t>(tokenizer_->vocab_size());
  std::vector<std::vector<int32_t>> pools;  // encodings of multi-byte text, to cut anywhere
  for (const json& c : reference_->at("cases"))
    if (c.at("class") == "emoji" || c.at("class") == "script_cjk" || c.at("class") == "random_unicode")
      pools.push_back(c.at("ids").get<std::vector<int32_t>>());
  size_t ending_open = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::vector<int32_t> ids;
    if (trial % 2 == 0) {
      for (int k = rng() % 24; k >= 0; --k) ids.push_back(static_cast<int32_t>(rng() % (vocab + 4)) - 2);
    } else {
      const auto& pool = pools[rng() % pools.size()];
      const size_t start = rng() % pool.size();
      ids.assign(pool.begin() + start, pool.begin() + std::min(pool.size(), start + 1 + rng() % 8));
    }
    std::string bytes;
    for (int32_t id : ids) tokenizer_->append_token_bytes(id, false, bytes);
    ending_open += utf8_settled_prefix(bytes) < bytes.size();
    for (bool skip : {false, true}) {
      const Streamed s = stream(*tokenizer_, ids, skip);
      ASSERT_TRUE(s.every_piece_valid);
      ASSERT_EQ(s.text, tokenizer_->decode(ids, skip));
    }
  }
  EXPECT_GT(ending_open, 1000u);  // the sequences do end mid-character
}

// A valid text streamed token by token: nothing is replaced, every character arrives whole.
TEST_F(IncrementalDecoderTest, ValidTextHasNoReplacementWhileStreaming) {
  const std::string text = "Emoji 👨‍👩‍👧‍👦🇯🇵 and 漢字𠀀 and ไทย<|im_end|>";
  const auto ids = tokenizer_->encode(text);
  IncrementalDecoder decoder(*tokenizer_, false);
  std::string out;
  size_t withheld = 0;
  for (int32_t id : ids) {
    const std::string piece = decoder.push(id);
    EXPECT_EQ(piece.find(kReplacement), std::string::npos);
    withheld += piece.empty();
    out += piece;
  }
  out += decoder.flush();
  EXPECT_EQ(out, text);
  EXPECT_GT(withheld, 0u);  // some tokens only carried part of a character
}

TEST(Utf8, LossyFollowsMaximalSubparts) {
  // Unicode ch. 3 examples (Table 3-8): one U+FFFD per maximal subpart.
  EXPECT_EQ(utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD" "d");
  EXPECT_EQ(utf8_lossy("\xE0\x80\x80"), kReplacement + kReplacement + kReplacement);
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), kReplacement + kReplacement + kReplacement);
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), kReplacement);
  EXPECT_EQ(utf8_settled_prefix("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(utf8_settled_prefix("ab\xF0\x41"), 4u);
}

}  // namespace
}  // namespace qwenvl::model
