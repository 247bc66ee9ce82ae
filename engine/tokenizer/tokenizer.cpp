// tokenizer.json is read with simdjson (Debian's libsimdjson), the rest of the project's JSON with
// nlohmann-json: Qwen2's file is 7 MB (151,643 vocabulary entries, 151,387 merges), and nlohmann's
// DOM took 0.4 s of a 0.5 s load in the release build and about 1.1 s of an engine's creation under
// AddressSanitizer, where simdjson's parser, an uninstrumented shared library, takes 17-24 ms
// (2026-12-07). Its DOM's elements borrow from the parser, which lives through from_file only.
#include "tokenizer/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "qwenvl/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/split_regex.h"
#include "tokenizer/utf8.h"

namespace qwenvl::model {
namespace {

using nlohmann::json;
namespace dom = simdjson::dom;

// GPT-2's pattern, which HF's ByteLevel pre-tokenizer applies when use_regex is true.
constexpr const char* kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's byte -> printable code point table (HF pre_tokenizers/byte_level.rs bytes_char).
std::array<int32_t, 256> byte_to_code_point() {
  std::array<int32_t, 256> table{};
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  int shift = 0;
  for (int b = 0; b < 256; ++b) table[b] = printable[b] ? b : 256 + shift++;
  return table;
}

// Next code point of valid UTF-8 at s[i]; advances i.
int32_t next_code_point(std::string_view s, size_t& i) {
  utf8proc_int32_t cp = 0;
  const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                  static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
  i += n > 0 ? static_cast<size_t>(n) : 1;
  return cp;
}

int32_t last_code_point(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return next_code_point(s, start);
}

// Rust regex \s (Unicode White_Space), used by HF for an added token's lstrip / rstrip.
bool is_white_space(int32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Rust regex \w (letters, marks, decimal digits, connector punctuation, join controls), used by HF
// for single_word added tokens.
bool is_word_char(int32_t cp) {
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return cp == 0x200C || cp == 0x200D;
  }
}

struct AddedToken {
  int32_t id;
  std::string content;
  std::string pattern;  // what is searched: the normalized content for normalized tokens
  bool special, lstrip, rstrip, normalized, single_word;
};

// Added tokens searched leftmost-longest (HF's Aho-Corasick with MatchKind::LeftmostLongest).
class AddedTokenSet {
 public:
  void add(const AddedToken* token) {
    if (token->pattern.empty()) return;
    by_first_byte_[static_cast<unsigned char>(token->pattern[0])].push_back(token);
  }

  // Splits `text` into text pieces (token == nullptr) and added tokens, with HF's single_word,
  // lstrip and rstrip rules (added_vocabulary.rs find_matches).
  template <typename Emit>
  void split(std::string_view text, Emit&& emit) const {
    struct Found {
      const AddedToken* token;
      size_t start, stop;
    };
    std::vector<Found> found;
    for (size_t i = 0; i < text.size();) {
      const AddedToken* best = nullptr;
      for (const AddedToken* token : by_first_byte_[static_cast<unsigned char>(text[i])]) {
        if (text.compare(i, token->pattern.size(), token->pattern) == 0 &&
            (best == nullptr || token->pattern.size() > best->pattern.size()))
          best = token;
      }
      if (best == nullptr) {
        ++i;
        continue;
      }
      found.push_back(Found{best, i, i + best->pattern.size()});
      i += best->pattern.size();
    }
    size_t offset = 0;
    for (Found f : found) {
      const AddedToken& token = *f.token;
      if (token.single_word) {
        const bool word_before = f.start > 0 && is_word_char(last_code_point(text.substr(0, f.start)));
        size_t after = f.stop;
        const bool word_after = f.stop < text.size() && is_word_char(next_code_point(text, after));
        if (word_before || word_after) continue;
      }
      if (token.lstrip) {
        size_t start = f.start;
        while (start > 0) {
          size_t prev = start - 1;
          while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
          size_t probe = prev;
          if (!is_white_space(next_code_point(text, probe))) break;
          start = prev;
        }
        f.start = std::max(start, offset);
      }
      if (token.rstrip) {
        while (f.stop < text.size()) {
          size_t probe = f.stop;
          if (!is_white_space(next_code_point(text, probe))) break;
          f.stop = probe;
        }
      }
      if (offset < f.start) emit(text.substr(offset, f.start - offset), nullptr);
      emit(text.substr(f.start, f.stop - f.start), &token);
      offset = f.stop;
    }
    if (offset < text.size()) emit(text.substr(offset), nullptr);
  }

  bool empty() const {
    return std::all_of(by_first_byte_.begin(), by_first_byte_.end(), [](const auto& v) { return v.empty(); });
  }

 private:
  std::array<std::vector<const AddedToken*>, 256> by_first_byte_;
};

enum class Normalization { kNfc, kNfd, kNfkc, kNfkd };

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open the tokenizer file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// tokenizer.json's elements, read with the file named in every error.
class JsonReader {
 public:
  explicit JsonReader(std::string origin) : origin_(std::move(origin)) {}

  // Member `key` of `object`; nothing when it has none or is not an object.
  static std::optional<dom::element> member(dom::element object, std::string_view key) {
    dom::object members;
    dom::element value;
    if (object.get_object().get(members) != simdjson::SUCCESS || members.at_key(key).get(value) != simdjson::SUCCESS)
      return std::nullopt;
    return value;
  }
  static bool present(const std::optional<dom::element>& value) { return value && !value->is_null(); }

  dom::element required(dom::element object, std::string_view key) const {
    const auto value = member(object, key);
    if (!value) throw malformed("no \"" + std::string(key) + "\" in " + simdjson::to_string(object).substr(0, 80));
    return *value;
  }
  dom::object object(dom::element value, const std::string& what) const {
    dom::object result;
    if (value.get_object().get(result) != simdjson::SUCCESS) throw malformed(what + " is not an object");
    return result;
  }
  dom::array array(dom::element value, const std::string& what) const {
    dom::array result;
    if (value.get_array().get(result) != simdjson::SUCCESS) throw malformed(what + " is not an array");
    return result;
  }
  std::string_view string(dom::element value, const std::string& what) const {
    std::string_view result;
    if (value.get_string().get(result) != simdjson::SUCCESS) throw malformed(what + " is not a string");
    return result;
  }
  double number(dom::element value, const std::string& what) const {
    double result = 0;
    if (value.get_double().get(result) != simdjson::SUCCESS) throw malformed(what + " is not a number");
    return result;
  }
  // Optional members: absent means `fallback`; present, they must have the type (null included).
  bool boolean(dom::element object, std::string_view key, bool fallback) const {
    const auto value = member(object, key);
    if (!value) return fallback;
    bool result = false;
    if (value->get_bool().get(result) != simdjson::SUCCESS) throw malformed(std::string(key) + " is not a boolean");
    return result;
  }
  std::string_view string(dom::element object, std::string_view key, std::string_view fallback) const {
    const auto value = member(object, key);
    return value ? string(*value, std::string(key)) : fallback;
  }

  Error malformed(const std::string& what) const { return Error(origin_ + ": malformed tokenizer.json: " + what); }

 private:
  std::string origin_;
};

// A token id as tokenizer.json writes it: HF reads a u32; ours are int32, so 0 .. 2^31 - 1.
int32_t read_id(dom::element value, const std::string& origin, std::string_view token) {
  int64_t id = -1;
  if (value.get_int64().get(id) == simdjson::SUCCESS && id >= 0 && id <= INT32_MAX) return static_cast<int32_t>(id);
  throw Error(origin + ": id " + simdjson::to_string(value) + " of token \"" + std::string(token) +
              "\" is not an integer in 0.." + std::to_string(INT32_MAX));
}

std::string type_of(dom::element component) {
  const auto type = JsonReader::member(component, "type");
  std::string_view name;
  if (!type || type->get_string().get(name) != simdjson::SUCCESS) return "?";
  return std::string(name);
}

}  // namespace

struct Tokenizer::Impl {
  std::string origin;  // the file, for messages
  std::vector<Normalization> normalizations;
  std::vector<SplitRegex> splits;  // HF Split(Regex, Isolated) steps before the byte-level step
  bool prefix_space = false;       // ByteLevel add_prefix_space
  std::optional<SplitRegex> byte_level_regex;  // ByteLevel use_regex
  std::unique_ptr<Bpe> bpe;

  std::unordered_map<std::string, int32_t> vocab;  // model tokens as written in the file
  std::deque<AddedToken> added;                    // stable addresses for the sets below
  std::unordered_map<std::string, int32_t> added_ids;
  AddedTokenSet raw_tokens, normalized_tokens;

  // Per known id: the bytes it decodes to, its string, whether it is an added token flagged special,
  // and whether decode(skip_special_tokens=true) drops it (HF compares the token's string with the
  // special set). Sorted by id: ids may lie anywhere below 2^31 with gaps, but in real vocabularies
  // they run 0..n-1, where an id is its own index (no hashing, no per-entry node: a 152k vocabulary
  // costs what its strings do).
  struct IdInfo {
    std::string bytes, string;
    int32_t id = 0;  // after the strings: 72 bytes an entry, not 80
    bool special = false, skipped = false;
  };
  std::vector<IdInfo> ids;
  const IdInfo* find(int32_t id) const {
    if (id >= 0 && static_cast<size_t>(id) < ids.size() && ids[static_cast<size_t>(id)].id == id)
      return &ids[static_cast<size_t>(id)];
    auto it = std::lower_bound(ids.begin(), ids.end(), id, [](const IdInfo& a, int32_t b) { return a.id < b; });
    return it != ids.end() && it->id == id ? &*it : nullptr;
  }
  // Sorts the entries added in any order; where an id came twice the later entry wins (an added
  // token over the vocabulary's entry), as assigning to a map would.
  void sort_ids() {
    if (!std::is_sorted(ids.begin(), ids.end(), [](const IdInfo& a, const IdInfo& b) { return a.id < b.id; }))
      std::stable_sort(ids.begin(), ids.end(), [](const IdInfo& a, const IdInfo& b) { return a.id < b.id; });
    size_t kept = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (kept > 0 && ids[kept - 1].id == ids[i].id) ids[kept - 1] = std::move(ids[i]);
      else if (kept++ != i) ids[kept - 1] = std::move(ids[i]);
    }
    ids.resize(kept);
  }

  std::string normalize(std::string_view text) const;
  void encode_text(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_normalized(std::string_view text, std::vector<int32_t>& ids) const;
};

std::string Tokenizer::Impl::normalize(std::string_view text) const {
  std::string current(text);
  for (Normalization n : normalizations) {
    if (std::all_of(current.begin(), current.end(), [](char c) { return (static_cast<unsigned char>(c) & 0x80) == 0; }))
      break;  // ASCII is unchanged by every normalization form
    int options = UTF8PROC_STABLE;
    switch (n) {
      case Normalization::kNfc: options |= UTF8PROC_COMPOSE; break;
      case Normalization::kNfd: options |= UTF8PROC_DECOMPOSE; break;
      case Normalization::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
      case Normalization::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    utf8proc_uint8_t* result = nullptr;
    const auto n_bytes = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(current.data()),
                                      static_cast<utf8proc_ssize_t>(current.size()), &result,
                                      static_cast<utf8proc_option_t>(options));
    if (n_bytes < 0) throw Error(origin + ": normalization failed: " + utf8proc_errmsg(n_bytes));
    current.assign(reinterpret_cast<const char*>(result), static_cast<size_t>(n_bytes));
    std::free(result);
  }
  return current;
}

void Tokenizer::Impl::encode_normalized(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<std::string_view> pieces{text}, next;
  for (const SplitRegex& split : splits) {
    next.clear();
    for (std::string_view piece : pieces) split.split_isolated(piece, next);
    pieces.swap(next);
  }
  std::deque<std::string> prefixed;  // owns pieces that gained a leading space
  if (prefix_space) {
    for (std::string_view& piece : pieces) {
      if (!piece.empty() && piece[0] != ' ') piece = prefixed.emplace_back(" " + std::string(piece));
    }
  }
  if (byte_level_regex) {
    next.clear();
    for (std::string_view piece : pieces) byte_level_regex->split_isolated(piece, next);
    pieces.swap(next);
  }
  for (std::string_view piece : pieces) bpe->encode_word(piece, ids);
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& ids) const {
  raw_tokens.split(text, [&](std::string_view piece, const AddedToken* token) {
    if (token != nullptr) {
      ids.push_back(token->id);
      return;
    }
    const std::string normalized = normalize(piece);
    normalized_tokens.split(normalized, [&](std::string_view inner, const AddedToken* inner_token) {
      if (inner_token != nullptr)
        ids.push_back(inner_token->id);
      else
        encode_normalized(inner, ids);
    });
  });
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_model_dir(const std::filesystem::path& dir) {
  const auto file = dir / "tokenizer.json";
  if (!std::filesystem::exists(file)) throw Error(file.string() + ": missing (the model directory has no tokenizer.json)");
  Tokenizer tokenizer = from_file(file);
  // transformers adds tokens listed in tokenizer_config.json's added_tokens_decoder; accept the file
  // only where it agrees with tokenizer.json, so that nothing is silently different.
  const auto config_file = dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_file)) {
    json config;
    try {
      config = json::parse(read_file(config_file));
    } catch (const json::exception& e) {
      throw Error(config_file.string() + ": not valid JSON: " + e.what());
    }
    if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
      for (const auto& [key, token] : config["added_tokens_decoder"].items()) {
        int32_t id = -1;
        const auto parsed = std::from_chars(key.data(), key.data() + key.size(), id);
        if (parsed.ec != std::errc() || parsed.ptr != key.data() + key.size() || id < 0 || !token.is_object())
          throw Error(config_file.string() + ": added_tokens_decoder entry \"" + key +
                      "\" is not an id with a token object");
        std::string content;
        bool special = false;
        try {
          content = token.value("content", "");
          special = token.value("special", false);
        } catch (const json::exception& e) {
          throw Error(config_file.string() + ": added token " + key + ": " + e.what());
        }
        auto found = tokenizer.impl_->added_ids.find(content);
        if (found == tokenizer.impl_->added_ids.end() || found->second != id || tokenizer.is_special(id) != special)
          throw Error(config_file.string() + ": added token " + key + " \"" + content +
                      "\" differs from tokenizer.json (unsupported)");
      }
    }
  }
  return tokenizer;
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  auto impl = std::make_unique<Impl>();
  impl->origin = tokenizer_json.string();
  const std::string& origin = impl->origin;
  dom::parser parser;
  dom::element doc;
  {
    const simdjson::padded_string text(read_file(tokenizer_json));
    if (const auto error = parser.parse(text).get(doc))
      throw Error(origin + ": not valid JSON: " + simdjson::error_message(error));
  }
  const JsonReader reader(origin);
  auto unsupported = [&](const std::string& what) { return Error(origin + ": unsupported " + what); };
  try {
    reader.object(doc, "the document");
    for (const char* option : {"truncation", "padding"})
      if (JsonReader::present(JsonReader::member(doc, option))) throw unsupported(std::string(option) + " (must be null)");

    // Normalizer.
    std::function<void(dom::element)> add_normalizer = [&](dom::element n) {
      if (n.is_null()) return;
      const std::string type = type_of(n);
      if (type == "NFC") impl->normalizations.push_back(Normalization::kNfc);
      else if (type == "NFD") impl->normalizations.push_back(Normalization::kNfd);
      else if (type == "NFKC") impl->normalizations.push_back(Normalization::kNfkc);
      else if (type == "NFKD") impl->normalizations.push_back(Normalization::kNfkd);
      else if (type == "Sequence") for (dom::element inner : reader.array(reader.required(n, "normalizers"), "normalizers")) add_normalizer(inner);
      else throw unsupported("normalizer \"" + type + "\"");
    };
    if (const auto normalizer = JsonReader::member(doc, "normalizer")) add_normalizer(*normalizer);

    // Pre-tokenizer: Split(Regex or String, Isolated) steps, then ByteLevel.
    bool byte_level = false;
    std::function<void(dom::element)> add_pre_tokenizer = [&](dom::element p) {
      const std::string type = type_of(p);
      if (byte_level) throw unsupported("pre_tokenizer \"" + type + "\" after ByteLevel");
      if (type == "Sequence") {
        for (dom::element inner : reader.array(reader.required(p, "pretokenizers"), "pretokenizers")) add_pre_tokenizer(inner);
      } else if (type == "ByteLevel") {
        byte_level = true;
        impl->prefix_space = reader.boolean(p, "add_prefix_space", true);
        if (reader.boolean(p, "use_regex", true)) impl->byte_level_regex.emplace(kByteLevelPattern, origin + " ByteLevel");
      } else if (type == "Split") {
        const std::string behavior(reader.string(p, "behavior", ""));
        if (behavior != "Isolated") throw unsupported("Split behavior \"" + behavior + "\"");
        if (reader.boolean(p, "invert", false)) throw unsupported("Split with invert: true");
        const dom::element pattern = reader.required(p, "pattern");
        std::string regex;
        if (const auto r = JsonReader::member(pattern, "Regex")) {
          regex = reader.string(*r, "Split pattern Regex");
        } else if (const auto literal = JsonReader::member(pattern, "String")) {
          for (char c : reader.string(*literal, "Split pattern String")) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && !(static_cast<unsigned char>(c) & 0x80)) regex += '\\';
            regex += c;
          }
        } else {
          throw unsupported("Split pattern " + simdjson::to_string(pattern));
        }
        impl->splits.emplace_back(regex, origin + " Split");
      } else {
        throw unsupported("pre_tokenizer \"" + type + "\"");
      }
    };
    const auto pre_tokenizer = JsonReader::member(doc, "pre_tokenizer");
    if (!JsonReader::present(pre_tokenizer)) throw unsupported("pre_tokenizer null (only byte-level BPE is supported)");
    add_pre_tokenizer(*pre_tokenizer);
    if (!byte_level) throw unsupported("pre_tokenizer without ByteLevel (only byte-level BPE is supported)");

    const auto decoder = JsonReader::member(doc, "decoder");
    const std::string decoder_type = decoder ? type_of(*decoder) : "?";
    if (decoder_type != "ByteLevel") throw unsupported("decoder \"" + decoder_type + "\" (ByteLevel is required)");

    // Model: byte-level BPE.
    const dom::element model = reader.required(doc, "model");
    if (type_of(model) != "BPE") throw unsupported("model type \"" + type_of(model) + "\"");
    if (const auto dropout = JsonReader::member(model, "dropout"); JsonReader::present(dropout) && reader.number(*dropout, "dropout") != 0.0)
      throw unsupported("BPE dropout");
    if (reader.boolean(model, "byte_fallback", false)) throw unsupported("BPE byte_fallback");
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const auto value = JsonReader::member(model, affix);
      if (JsonReader::present(value) && !reader.string(*value, affix).empty()) throw unsupported(std::string("BPE ") + affix);
    }
    const bool ignore_merges = reader.boolean(model, "ignore_merges", false);

    const std::array<int32_t, 256> to_code_point = byte_to_code_point();
    std::array<int, 512> to_byte;
    to_byte.fill(-1);
    for (int b = 0; b < 256; ++b) to_byte[to_code_point[b]] = b;
    // The bytes a token string stands for (HF ByteLevel decoder: raw UTF-8 when not all symbols map).
    auto symbols_to_bytes = [&](std::string_view token, bool& mapped) {
      std::string bytes;
      mapped = true;
      for (size_t i = 0; i < token.size();) {
        const int32_t cp = next_code_point(token, i);
        if (cp < 0 || cp >= 512 || to_byte[cp] < 0) {
          mapped = false;
          return std::string(token);
        }
        bytes += static_cast<char>(to_byte[cp]);
      }
      return bytes;
    };

    // The vocabulary in the file's order (real files list it by id, so the entries need no sort).
    // A token written twice takes its last id, as HF's map does.
    const dom::object vocab = reader.object(reader.required(model, "vocab"), "model.vocab");
    const auto added_tokens = JsonReader::member(doc, "added_tokens");
    const dom::array added_list = JsonReader::present(added_tokens) ? reader.array(*added_tokens, "added_tokens") : dom::array();
    impl->ids.reserve(vocab.size() + (JsonReader::present(added_tokens) ? added_list.size() : 0));
    impl->vocab.reserve(vocab.size());
    std::vector<std::pair<std::string_view, int32_t>> entries;
    entries.reserve(vocab.size());
    bool repeated = false;
    for (const dom::key_value_pair entry : vocab) {
      const int32_t id = read_id(entry.value, origin, entry.key);
      const auto [it, inserted] = impl->vocab.try_emplace(std::string(entry.key), id);
      if (!inserted) {
        it->second = id;
        repeated = true;
      }
      entries.emplace_back(entry.key, id);
    }
    if (repeated) {
      entries.clear();
      for (const auto& [token, id] : impl->vocab) entries.emplace_back(token, id);
    }

    std::array<int32_t, 256> byte_ids;
    byte_ids.fill(-1);
    std::unordered_map<std::string, int32_t> byte_vocab;  // only ignore_merges looks words up whole
    for (const auto& [token, id] : entries) {
      bool mapped = false;
      std::string bytes = symbols_to_bytes(token, mapped);
      if (mapped) {
        if (bytes.size() == 1) byte_ids[static_cast<unsigned char>(bytes[0])] = id;
        if (ignore_merges) byte_vocab.emplace(bytes, id);
      }
      impl->ids.push_back(Impl::IdInfo{std::move(bytes), std::string(token), id});
    }
    if (JsonReader::present(JsonReader::member(model, "unk_token")) &&
        std::find(byte_ids.begin(), byte_ids.end(), -1) != byte_ids.end())
      throw unsupported("BPE with an unk_token and a vocabulary missing single bytes");

    const dom::array merge_list = reader.array(reader.required(model, "merges"), "model.merges");
    std::vector<Bpe::Merge> merges;
    merges.reserve(merge_list.size());
    std::string joined;
    auto id_of = [&](const std::string& token) {
      auto it = impl->vocab.find(token);
      if (it == impl->vocab.end()) throw Error(origin + ": merge token \"" + token + "\" is not in the vocabulary");
      return it->second;
    };
    for (const dom::element merge : merge_list) {
      std::string left, right;
      std::string_view line;
      dom::array pair;
      if (merge.get_string().get(line) == simdjson::SUCCESS) {
        const size_t space = line.find(' ');
        if (space == std::string_view::npos) throw Error(origin + ": merge \"" + std::string(line) + "\" is not two tokens");
        left = line.substr(0, space);
        right = line.substr(space + 1);
      } else if (merge.get_array().get(pair) == simdjson::SUCCESS && pair.size() == 2) {
        left = reader.string(pair.at(0).value_unsafe(), "a merge's token");
        right = reader.string(pair.at(1).value_unsafe(), "a merge's token");
      } else {
        throw Error(origin + ": merge " + simdjson::to_string(merge) + " is not two tokens");
      }
      joined.assign(left).append(right);
      merges.push_back(Bpe::Merge{id_of(left), id_of(right), id_of(joined)});
    }
    impl->bpe = std::make_unique<Bpe>(byte_ids, merges, std::move(byte_vocab), ignore_merges);

    // Added tokens.
    std::unordered_set<std::string> special_contents;
    if (JsonReader::present(added_tokens)) {
      for (const dom::element t : added_list) {
        const std::string content(reader.string(reader.required(t, "content"), "an added token's content"));
        AddedToken token{read_id(reader.required(t, "id"), origin, content), content, "", reader.boolean(t, "special", false),
                         reader.boolean(t, "lstrip", false), reader.boolean(t, "rstrip", false), reader.boolean(t, "normalized", true),
                         reader.boolean(t, "single_word", false)};
        if (token.content.empty()) continue;  // HF ignores empty added tokens
        token.pattern = token.normalized ? impl->normalize(token.content) : token.content;
        if (token.special) special_contents.insert(token.content);
        impl->added_ids[token.content] = token.id;
        const AddedToken& stored = impl->added.emplace_back(std::move(token));
        (stored.normalized ? impl->normalized_tokens : impl->raw_tokens).add(&stored);
        bool mapped = false;
        // HF decodes an added token from its normalized form (simple_id_to_token).
        impl->ids.push_back(Impl::IdInfo{symbols_to_bytes(stored.pattern, mapped), stored.pattern, stored.id, stored.special});
      }
    }
    impl->sort_ids();
    if (!special_contents.empty())
      for (Impl::IdInfo& info : impl->ids) info.skipped = special_contents.count(info.string) > 0;
  } catch (const simdjson::simdjson_error& e) {
    throw Error(origin + ": malformed tokenizer.json: " + e.what());
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view utf8) const {
  std::vector<int32_t> ids;
  ids.reserve(utf8.size() / 3 + 4);
  if (utf8_is_valid(utf8)) {
    impl_->encode_text(utf8, ids);
  } else {
    impl_->encode_text(utf8_lossy(utf8), ids);
  }
  return ids;
}

void Tokenizer::append_token_bytes(int32_t id, bool skip_special_tokens, std::string& out) const {
  const Impl::IdInfo* info = impl_->find(id);
  if (info == nullptr || (skip_special_tokens && info->skipped)) return;
  out += info->bytes;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) append_token_bytes(id, skip_special_tokens, bytes);
  return utf8_is_valid(bytes) ? bytes : utf8_lossy(bytes);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (auto it = impl_->added_ids.find(key); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab.find(key); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const Impl::IdInfo* info = impl_->find(id);
  if (info == nullptr) throw Error(impl_->origin + ": no token has id " + std::to_string(id));
  return info->string;
}

int64_t Tokenizer::vocab_size() const {
  int64_t n = static_cast<int64_t>(impl_->vocab.size());
  for (const auto& [content, id] : impl_->added_ids)
    if (impl_->vocab.count(content) == 0) ++n;
  return n;
}

bool Tokenizer::is_special(int32_t id) const {
  const Impl::IdInfo* info = impl_->find(id);
  return info != nullptr && info->special;
}

}  // namespace qwenvl::model
