// Parity of model::Tokenizer with HF tokenizers as transformers 5.17 uses it (AutoTokenizer), on the
// cases written by scripts/fixtures/tokenizer_cases.py for three vocabularies: Qwen2's real BPE
// (tokenizers/qwen2) and the fixture models tiny-a (same vocabulary, Hub layout) and tiny-b (a small
// trained vocabulary, transformers' save_pretrained layout).
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "qwenvl/error.h"
#include "test_util.h"
#include "tokenizer/utf8.h"

namespace qwenvl::model {
namespace {

using nlohmann::json;

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

struct Vocabulary {
  std::string name;  // reference/tokenizer_<name>.json
  json reference;
  std::unique_ptr<Tokenizer> tokenizer;
};

Vocabulary& vocabulary(const std::string& name) {
  static std::map<std::string, Vocabulary> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end()) {
    const auto fixtures = test::fixtures_dir();
    Vocabulary v{name, json::parse(test::read_text(fixtures / "reference" / ("tokenizer_" + name + ".json"))), nullptr};
    v.tokenizer = std::make_unique<Tokenizer>(
        Tokenizer::from_model_dir(fixtures / v.reference.at("vocabulary").get<std::string>()));
    it = loaded.emplace(name, std::move(v)).first;
  }
  return it->second;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

class TokenizerParity : public ::testing::TestWithParam<std::string> {
 protected:
  // Encodes and decodes every case of `cls` ("" for all) and expects HF's ids and texts; returns how
  // many cases were compared.
  size_t check_class(const std::string& cls) {
    Vocabulary& v = vocabulary(GetParam());
    size_t compared = 0, failed = 0;
    for (const json& c : v.reference.at("cases")) {
      if (!cls.empty() && c.at("class") != cls) continue;
      ++compared;
      const std::string input = c.contains("hex") ? from_hex(c["hex"]) : c.at("text").get<std::string>();
      const auto expected = ids_of(c.at("ids"));
      const auto got = v.tokenizer->encode(input);
      const std::string decoded = v.tokenizer->decode(expected, false);
      const std::string decoded_skip = v.tokenizer->decode(expected, true);
      const bool ok = got == expected && decoded == c.at("decoded") && decoded_skip == c.at("decoded_skip");
      if (!ok && ++failed <= 5) {
        ADD_FAILURE() << v.name << " [" << c.at("class").get<std::string>() << "] " << c.dump() << "\n got ids: " << show(got)
                      << "\n got decode: " << json(utf8_lossy(decoded)).dump()
                      << "\n got decode(skip): " << json(utf8_lossy(decoded_skip)).dump();
      }
    }
    EXPECT_EQ(failed, 0u) << failed << " of " << compared << " cases differ";
    EXPECT_GT(compared, 0u) << "no cases of class " << cls;
    return compared;
  }
};

TEST_P(TokenizerParity, EveryCaseMatchesHF) {
  const size_t n = check_class("");
  EXPECT_GE(n, 10000u);
  std::printf("[ tokenizer ] %s: %zu strings equal to HF\n", GetParam().c_str(), n);
}

TEST_P(TokenizerParity, WhitespaceRunsBeforeText) { check_class("whitespace_before_text"); }
TEST_P(TokenizerParity, ContractionsAnyCase) { check_class("contractions"); }
TEST_P(TokenizerParity, CarriageReturnAndNewlineRuns) { check_class("crlf_runs"); }
TEST_P(TokenizerParity, CombiningMarksUnderNfc) { check_class("combining_marks"); }
TEST_P(TokenizerParity, EmojiSequences) { check_class("emoji"); }
TEST_P(TokenizerParity, DigitsAndNumbers) { check_class("numbers"); }
TEST_P(TokenizerParity, Code) { check_class("code"); }
TEST_P(TokenizerParity, SpecialTokensGluedToText) { check_class("special_tokens"); }
TEST_P(TokenizerParity, RandomUnicode) { check_class("random_unicode"); }
TEST_P(TokenizerParity, InvalidUtf8IsReplacedLikePython) { check_class("invalid_utf8"); }
TEST_P(TokenizerParity, OnigurumaWhiteSpaceAndCaseFolding) { check_class("onig_compat"); }
TEST_P(TokenizerParity, LongWordsStayExact) { check_class("long_words"); }
TEST_P(TokenizerParity, EmptyAndBlank) { check_class("empty"); }
TEST_P(TokenizerParity, MixedText) { check_class("mixed"); }
TEST_P(TokenizerParity, Scripts) {
  for (const char* script : {"latin", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "thai", "cjk", "hangul", "kana"})
    check_class(std::string("script_") + script);
}

TEST_P(TokenizerParity, DecodesOfRandomAndCutIdSequences) {
  Vocabulary& v = vocabulary(GetParam());
  size_t compared = 0, failed = 0, cut = 0;
  for (const json& d : v.reference.at("decodes")) {
    const auto ids = ids_of(d.at("ids"));
    ++compared;
    cut += d.at("class") == "cut_characters";
    const bool ok = v.tokenizer->decode(ids, false) == d.at("decoded") && v.tokenizer->decode(ids, true) == d.at("decoded_skip");
    if (!ok && ++failed <= 5) ADD_FAILURE() << v.name << " decode differs: " << d.dump();
  }
  EXPECT_EQ(failed, 0u) << failed << " of " << compared;
  EXPECT_GT(cut, 1000u);
}

TEST_P(TokenizerParity, VocabularyAndSpecialFlags) {
  Vocabulary& v = vocabulary(GetParam());
  EXPECT_EQ(v.tokenizer->vocab_size(), v.reference.at("vocab_size").get<int64_t>());
  for (const auto& [id, special] : v.reference.at("added_special").items())
    EXPECT_EQ(v.tokenizer->is_special(std::stoi(id)), special.get<bool>()) << id;
  for (const auto& [id, token] : v.reference.at("tokens").items()) {
    EXPECT_EQ(v.tokenizer->id_to_token(std::stoi(id)), token.get<std::string>());
    EXPECT_EQ(v.tokenizer->token_to_id(token.get<std::string>()), std::stoi(id)) << token;
  }
  EXPECT_FALSE(v.tokenizer->token_to_id("no such token \x01").has_value());
  EXPECT_THROW(v.tokenizer->id_to_token(static_cast<int32_t>(v.tokenizer->vocab_size()) + 100), Error);
  EXPECT_FALSE(v.tokenizer->is_special(-1));
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, TokenizerParity, ::testing::Values("qwen2", "tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "qwen2" ? std::string("qwen2") : info.param.substr(0, 4) + info.param.substr(5); });

// Spec §5: the rendered prompt's ids (also HF-test's input_ids prefix).
TEST(Tokenizer, KnownQwen2Ids) {
  Vocabulary& v = vocabulary("qwen2");
  EXPECT_EQ(v.tokenizer->encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"),
            (std::vector<int32_t>{151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198}));
}

// Both JSON forms of merges ("a b" strings as the Hub writes them, [a, b] pairs as tokenizers >= 0.20
// saves them) give the same tokenizer.
class TokenizerFiles : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& name, const json& doc) {
    const auto dir = std::filesystem::temp_directory_path() / ("qwenvl_test_tokenizer_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = dir / name;
    std::ofstream(path) << doc.dump();
    return path;
  }
  json qwen2_json() {
    return json::parse(test::read_text(test::fixtures_dir() / "tokenizers/qwen2/tokenizer.json"));
  }
};

TEST_F(TokenizerFiles, MergesAsStringsOrPairs) {
  json doc = qwen2_json();
  json strings = json::array(), pairs = json::array();
  for (const json& m : doc["model"]["merges"]) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      a = s.substr(0, s.find(' '));
      b = s.substr(s.find(' ') + 1);
    } else {
      a = m[0];
      b = m[1];
    }
    strings.push_back(a + " " + b);
    pairs.push_back(json::array({a, b}));
  }
  doc["model"]["merges"] = strings;
  const Tokenizer from_strings = Tokenizer::from_file(write("strings.json", doc));
  doc["model"]["merges"] = pairs;
  const Tokenizer from_pairs = Tokenizer::from_file(write("pairs.json", doc));
  Vocabulary& v = vocabulary("qwen2");
  size_t n = 0;
  for (const json& c : v.reference.at("cases")) {
    if (!c.contains("text") || ++n > 500) continue;
    const auto expected = ids_of(c.at("ids"));
    ASSERT_EQ(from_strings.encode(c.at("text").get<std::string>()), expected) << c.dump();
    ASSERT_EQ(from_pairs.encode(c.at("text").get<std::string>()), expected) << c.dump();
  }
}

void expect_error_naming(const std::function<void()>& load, const std::string& file, const std::string& what) {
  try {
    load();
    ADD_FAILURE() << "no error for " << what;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(file), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  }
}

TEST_F(TokenizerFiles, MissingFileIsAnError) {
  expect_error_naming([] { Tokenizer::from_file("/nonexistent/tokenizer.json"); }, "/nonexistent/tokenizer.json", "cannot open");
  expect_error_naming([] { Tokenizer::from_model_dir("/nonexistent"); }, "/nonexistent/tokenizer.json", "missing");
}

TEST_F(TokenizerFiles, BadJsonIsAnError) {
  const auto dir = std::filesystem::temp_directory_path() / ("qwenvl_test_tokenizer_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "bad.json";
  std::ofstream(path) << "{\"model\": {\"type\": \"BPE\", ";
  expect_error_naming([&] { Tokenizer::from_file(path); }, path.string(), "not valid JSON");
  json doc = qwen2_json();
  doc["model"].erase("merges");
  const auto no_merges = write("no_merges.json", doc);
  expect_error_naming([&] { Tokenizer::from_file(no_merges); }, no_merges.string(), "malformed");
}

TEST_F(TokenizerFiles, UnsupportedComponentsAreNamed) {
  const json base = qwen2_json();
  struct Case {
    std::string name, pointer, what;
    json value;
  };
  const std::vector<Case> cases = {
      {"wordpiece.json", "/model/type", "model type \"WordPiece\"", "WordPiece"},
      {"lowercase.json", "/normalizer", "normalizer \"Lowercase\"", json{{"type", "Lowercase"}}},
      {"metaspace.json", "/pre_tokenizer", "pre_tokenizer \"Metaspace\"", json{{"type", "Metaspace"}}},
      {"decoder.json", "/decoder", "decoder \"WordPiece\"", json{{"type", "WordPiece"}}},
      {"fallback.json", "/model/byte_fallback", "byte_fallback", true},
      {"removed.json", "/pre_tokenizer/pretokenizers/0/behavior", "Split behavior \"Removed\"", "Removed"},
  };
  for (const Case& c : cases) {
    json doc = base;
    doc[json::json_pointer(c.pointer)] = c.value;
    const auto path = write(c.name, doc);
    expect_error_naming([&] { Tokenizer::from_file(path); }, path.string(), c.what);
  }
}

}  // namespace
}  // namespace qwenvl::model
