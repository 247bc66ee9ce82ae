// Token ids a hostile tokenizer.json or tokenizer_config.json can hold (found by scripts/fuzz.sh
// fuzz_tokenizer_json, and by hand: an id of 2^31 was called negative): ids are int32, 0 .. 2^31 - 1,
// may leave gaps without costing memory for them, and every fault is one qwenvl::Error naming the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "error_of.h"
#include "fuzz/tiny_tokenizer.h"
#include "qwenvl/error.h"
#include "tokenizer/tokenizer.h"

namespace qwenvl::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class TokenizerIds : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qwenvl_test_tokenizer_ids_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
  }
  std::string error_of() {
    try {
      Tokenizer::from_model_dir(dir_);
    } catch (const Error& e) {
      return e.what();
    }
    return "<loaded>";
  }

  fs::path dir_;
  json tokenizer_ = json::parse(fuzz::tiny_qwen2_tokenizer_json());
};

TEST_F(TokenizerIds, AnIdOfTwoToTheThirtyOneIsOutOfRangeNotNegative) {
  tokenizer_["model"]["vocab"]["hello"] = 2147483648u;
  write("tokenizer.json", tokenizer_.dump());
  const std::string message = error_of();
  EXPECT_THAT(message, HasSubstr("tokenizer.json: id 2147483648 of token \"hello\" is not an integer in 0..2147483647"));
  EXPECT_THAT(message, Not(HasSubstr("negative")));
}

TEST_F(TokenizerIds, AddedTokenIdsOutsideInt32AreRefused) {
  for (const json& id : {json(4294967296u), json(-1), json(1.5), json("7")}) {
    SCOPED_TRACE(id.dump());
    json t = tokenizer_;
    t["added_tokens"][0]["id"] = id;
    write("tokenizer.json", t.dump());
    EXPECT_THAT(error_of(), HasSubstr("tokenizer.json: id " + id.dump() + " of token \"<|endoftext|>\""));
  }
}

TEST_F(TokenizerIds, TheLargestIdLoadsWithoutATableForTheGap) {
  // A table indexed by id was 2^31 entries (about 140 GB) for this one token.
  tokenizer_["added_tokens"][0]["id"] = 2147483647;
  write("tokenizer.json", tokenizer_.dump());
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tokenizer = Tokenizer::from_model_dir(dir_);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  EXPECT_EQ(tokenizer.id_to_token(2147483647), "<|endoftext|>");
  EXPECT_EQ(tokenizer.decode({2147483647}, false), "<|endoftext|>");
  EXPECT_EQ(tokenizer.decode({2147483647}, true), "");
  EXPECT_EQ(tokenizer.encode("<|endoftext|>"), std::vector<int32_t>{2147483647});
}

// A JSON object may repeat a key; HF reads the vocabulary into a map, where the last entry wins.
TEST_F(TokenizerIds, ATokenWrittenTwiceTakesItsLastId) {
  const int32_t first = tokenizer_["model"]["vocab"]["hello"].get<int32_t>();
  const std::string vocab = tokenizer_["model"]["vocab"].dump();
  std::string text = tokenizer_.dump();
  ASSERT_NE(text.find(vocab), std::string::npos);
  text.replace(text.find(vocab), vocab.size(), vocab.substr(0, vocab.size() - 1) + R"(,"hello":1000})");
  write("tokenizer.json", text);
  const Tokenizer tokenizer = Tokenizer::from_model_dir(dir_);
  EXPECT_EQ(tokenizer.token_to_id("hello"), 1000);
  EXPECT_EQ(tokenizer.encode("hello"), std::vector<int32_t>{1000});
  EXPECT_EQ(tokenizer.id_to_token(1000), "hello");
  EXPECT_EQ(tokenizer.decode({1000}, false), "hello");
  EXPECT_THAT(test::error_of([&] { tokenizer.id_to_token(first); }), HasSubstr("no token has id"));
}

TEST_F(TokenizerIds, AMalformedAddedTokensDecoderNamesTheConfigFile) {
  write("tokenizer.json", tokenizer_.dump());
  // Each used to escape as std::invalid_argument, std::out_of_range or a JSON type error.
  for (const char* decoder : {R"({"abc": {"content": "x"}})", R"({"99999999999": {"content": "x"}})",
                              R"({"5": "not an object"})", R"({"5": {"content": 7}})"}) {
    SCOPED_TRACE(decoder);
    write("tokenizer_config.json", std::string(R"({"added_tokens_decoder": )") + decoder + "}");
    const std::string message = error_of();
    EXPECT_THAT(message, HasSubstr((dir_ / "tokenizer_config.json").string()));
    EXPECT_THAT(message, Not(HasSubstr("\n")));
  }
}

}  // namespace
}  // namespace qwenvl::model
