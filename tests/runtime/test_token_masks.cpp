// The constrained rows of a step: their masks filled into one block with their rows' indices, and
// their grammars given their tokens row-parallel (runtime/token_masks.h), with a grammar of our own
// that allows a fixed set of ids.
#include "runtime/token_masks.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "qwenvl/error.h"

namespace qwenvl::runtime {
namespace {

// Allows `allowed`; remembers what it took and on which thread.
class SetConstraint : public structured::TokenConstraint {
 public:
  explicit SetConstraint(std::set<int32_t> allowed) : allowed_(std::move(allowed)) {}
  void fill_mask(int32_t* words) override {
    for (int64_t w = 0; w < structured::mask_words(kVocab); ++w) words[w] = 0;
    for (int32_t id : allowed_) words[id / 32] |= static_cast<int32_t>(1u << (id % 32));
  }
  bool accept(int32_t token) override {
    taken.push_back(token);
    thread = std::this_thread::get_id();
    return allowed_.count(token) > 0;
  }
  bool complete() const override { return false; }

  static constexpr int64_t kVocab = 70;  // three mask words, the last one partly used
  std::vector<int32_t> taken;
  std::thread::id thread;

 private:
  std::set<int32_t> allowed_;
};

bool allowed(const TokenMasks& m, int64_t row, int32_t id) {
  return (m.block[row * m.words + id / 32].item<int32_t>() >> (id % 32)) & 1;
}

TEST(TokenMasks, EachConstrainedRowsMaskWithItsLogitsRow) {
  SetConstraint first({1, 33, 69}), second({0});
  const TokenMasks m = fill_token_masks({&first, nullptr, &second}, SetConstraint::kVocab, /*pinned=*/false);
  ASSERT_EQ(m.rows, 2);
  ASSERT_EQ(m.words, 3);
  EXPECT_EQ(m.block[m.rows * m.words].item<int32_t>(), 0) << "the first mask's logits row";
  EXPECT_EQ(m.block[m.rows * m.words + 1].item<int32_t>(), 2) << "the second mask's logits row";
  for (int32_t id = 0; id < SetConstraint::kVocab; ++id) {
    EXPECT_EQ(allowed(m, 0, id), id == 1 || id == 33 || id == 69) << id;
    EXPECT_EQ(allowed(m, 1, id), id == 0) << id;
  }
  EXPECT_EQ(fill_token_masks({nullptr, nullptr}, SetConstraint::kVocab, false).rows, 0) << "no constrained row";
}

TEST(TokenMasks, EachGrammarTakesItsOwnRowsTokenOnce) {
  constexpr int kRows = 200;
  std::vector<std::unique_ptr<SetConstraint>> owned;
  std::vector<structured::TokenConstraint*> constraints;
  std::vector<int64_t> tokens;
  for (int row = 0; row < kRows; ++row) {
    owned.push_back(std::make_unique<SetConstraint>(std::set<int32_t>{row % 70}));
    constraints.push_back(row % 3 == 1 ? nullptr : owned.back().get());  // every third row unconstrained
    tokens.push_back(row % 70);
  }
  accept_constrained_tokens(constraints, tokens);
  std::set<std::thread::id> threads;
  for (int row = 0; row < kRows; ++row) {
    const std::vector<int32_t> want = row % 3 == 1 ? std::vector<int32_t>{} : std::vector<int32_t>{row % 70};
    EXPECT_EQ(owned[row]->taken, want) << "row " << row;
    if (!want.empty()) threads.insert(owned[row]->thread);
  }
  EXPECT_GT(threads.size(), 1u) << "the rows ran on the calling thread alone";
}

TEST(TokenMasks, AGrammarRefusingItsTokenIsAnErrorNamingIt) {
  SetConstraint takes({5}), refuses({5});
  try {
    accept_constrained_tokens({&takes, &refuses}, {5, 6});
    FAIL() << "a refused token was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token 6"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qwenvl::runtime
