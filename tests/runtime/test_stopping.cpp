// When a sequence stops: on an EOS id unless the request sets ignore_eos (benchmarks force a fixed
// number of tokens, as transformers' min_new_tokens does), at max_new_tokens either way, and on a
// stop string, which the sequence then names.
#include <gtest/gtest.h>

#include <memory>

#include "runtime/stopping.h"
#include "test_util.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl::runtime {
namespace {

constexpr int32_t kEos = 151645;  // <|im_end|> in Qwen2's vocabulary (tiny-a's tokenizer)
constexpr int32_t kWord = 9707;   // an ordinary token: "Hello"

class Stopping : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tokenizer_ = new model::Tokenizer(
        model::Tokenizer::from_file(test::fixtures_dir() / "models" / "tiny-a" / "tokenizer.json"));
  }
  static void TearDownTestSuite() { delete tokenizer_; }

  std::unique_ptr<Sequence> sequence(bool ignore_eos, int64_t max_new_tokens) {
    auto s = std::make_unique<Sequence>();
    s->request.sampling.ignore_eos = ignore_eos;
    s->settings.eos_token_ids = {kEos};
    s->settings.max_new_tokens = max_new_tokens;
    s->prompt.ids = {kWord, kWord};
    s->decoder = std::make_unique<model::IncrementalDecoder>(*tokenizer_, /*skip_special_tokens=*/true);
    return s;
  }
  static model::Tokenizer* tokenizer_;
};
model::Tokenizer* Stopping::tokenizer_ = nullptr;

TEST_F(Stopping, EosEndsTheSequence) {
  auto s = sequence(/*ignore_eos=*/false, 8);
  EXPECT_EQ(accept_token(*s, kWord, 4096), StopReason::kNone);
  EXPECT_EQ(accept_token(*s, kEos, 4096), StopReason::kEos);
}

TEST_F(Stopping, IgnoreEosGoesOnToMaxNewTokens) {
  auto s = sequence(/*ignore_eos=*/true, 4);
  EXPECT_EQ(accept_token(*s, kWord, 4096), StopReason::kNone);
  EXPECT_EQ(accept_token(*s, kEos, 4096), StopReason::kNone);
  EXPECT_EQ(accept_token(*s, kEos, 4096), StopReason::kNone);
  EXPECT_EQ(accept_token(*s, kWord, 4096), StopReason::kLength);
  EXPECT_EQ(s->generated.size(), 4u);
}

// The earliest match ends the answer and is the one named; of two matching at the same place, the
// one listed first.
TEST_F(Stopping, AStopStringEndsTheSequenceAndIsNamed) {
  auto s = sequence(/*ignore_eos=*/false, 8);
  s->settings.stop_strings = {"xyz", "ll", "ello", "el"};
  EXPECT_EQ(accept_token(*s, kWord, 4096), StopReason::kStopString);
  EXPECT_EQ(s->text, "H");
  EXPECT_EQ(s->matched_stop, "ello");
}

TEST_F(Stopping, NoStopStringIsNamedAtEos) {
  auto s = sequence(/*ignore_eos=*/false, 8);
  s->settings.stop_strings = {"xyz"};
  EXPECT_EQ(accept_token(*s, kEos, 4096), StopReason::kEos);
  EXPECT_EQ(s->matched_stop, "");
}

}  // namespace
}  // namespace qwenvl::runtime
