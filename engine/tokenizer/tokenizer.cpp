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

#include "qwenvl/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/split_regex.h"
#include "tokenizer/utf8.h"

namespace qwenvl::model {
namespace {

using nlohmann::json;

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

// A token id as tokenizer.json writes it: HF reads a u32; ours are int32, so 0 .. 2^31 - 1.
int32_t read_id(const json& value, const std::string& origin, const std::string& token) {
  if (!value.is_number_integer() || (value.is_number_unsigned() && value.get<uint64_t>() > INT32_MAX) ||
      (!value.is_number_unsigned() && (value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX)))
    throw Error(origin + ": id " + value.dump() + " of token \"" + token + "\" is not an integer in 0.." +
                std::to_string(INT32_MAX));
  return static_cast<int32_t>(value.get<int64_t>());
}

std::string type_of(const json& component) {
  if (!component.is_object() || !component.contains("type") || !component["type"].is_string()) return "?";
  return component["type"].get<std::string>();
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
  json doc;
  try {
    doc = json::parse(read_file(tokenizer_json));
  } catch (const json::exception& e) {
    throw Error(origin + ": not valid JSON: " + e.what());
  }
  auto unsupported = [&](const std::string& what) { return Error(origin + ": unsupported " + what); };
  try {
    for (const char* option : {"truncation", "padding"})
      if (doc.contains(option) && !doc[option].is_null()) throw unsupported(std::string(option) + " (must be null)");

    // Normalizer.
    std::function<void(const json&)> add_normalizer = [&](const json& n) {
      if (n.is_null()) return;
      const std::string type = type_of(n);
      if (type == "NFC") impl->normalizations.push_back(Normalization::kNfc);
      else if (type == "NFD") impl->normalizations.push_back(Normalization::kNfd);
      else if (type == "NFKC") impl->normalizations.push_back(Normalization::kNfkc);
      else if (type == "NFKD") impl->normalizations.push_back(Normalization::kNfkd);
      else if (type == "Sequence") for (const json& inner : n.at("normalizers")) add_normalizer(inner);
      else throw unsupported("normalizer \"" + type + "\"");
    };
    add_normalizer(doc.value("normalizer", json()));

    // Pre-tokenizer: Split(Regex or String, Isolated) steps, then ByteLevel.
    bool byte_level = false;
    std::function<void(const json&)> add_pre_tokenizer = [&](const json& p) {
      const std::string type = type_of(p);
      if (byte_level) throw unsupported("pre_tokenizer \"" + type + "\" after ByteLevel");
      if (type == "Sequence") {
        for (const json& inner : p.at("pretokenizers")) add_pre_tokenizer(inner);
      } else if (type == "ByteLevel") {
        byte_level = true;
        impl->prefix_space = p.value("add_prefix_space", true);
        if (p.value("use_regex", true)) impl->byte_level_regex.emplace(kByteLevelPattern, origin + " ByteLevel");
      } else if (type == "Split") {
        if (p.value("behavior", "") != "Isolated") throw unsupported("Split behavior \"" + p.value("behavior", "") + "\"");
        if (p.value("invert", false)) throw unsupported("Split with invert: true");
        const json& pattern = p.at("pattern");
        std::string regex;
        if (pattern.contains("Regex")) {
          regex = pattern["Regex"].get<std::string>();
        } else if (pattern.contains("String")) {
          for (char c : pattern["String"].get<std::string>()) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && !(static_cast<unsigned char>(c) & 0x80)) regex += '\\';
            regex += c;
          }
        } else {
          throw unsupported("Split pattern " + pattern.dump());
        }
        impl->splits.emplace_back(regex, origin + " Split");
      } else {
        throw unsupported("pre_tokenizer \"" + type + "\"");
      }
    };
    if (!doc.contains("pre_tokenizer") || doc["pre_tokenizer"].is_null()) throw unsupported("pre_tokenizer null (only byte-level BPE is supported)");
    add_pre_tokenizer(doc["pre_tokenizer"]);
    if (!byte_level) throw unsupported("pre_tokenizer without ByteLevel (only byte-level BPE is supported)");

    const json decoder = doc.value("decoder", json());
    if (type_of(decoder) != "ByteLevel") throw unsupported("decoder \"" + type_of(decoder) + "\" (ByteLevel is required)");

    // Model: byte-level BPE.
    const json& model = doc.at("model");
    if (type_of(model) != "BPE") throw unsupported("model type \"" + type_of(model) + "\"");
    if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0)
      throw unsupported("BPE dropout");
    if (model.value("byte_fallback", false)) throw unsupported("BPE byte_fallback");
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(affix) && !model[affix].is_null() && !model[affix].get<std::string>().empty())
        throw unsupported(std::string("BPE ") + affix);

    const std::array<int32_t, 256> to_code_point = byte_to_code_point();
    std::array<int, 512> to_byte;
    to_byte.fill(-1);
    for (int b = 0; b < 256; ++b) to_byte[to_code_point[b]] = b;
    // The bytes a token string stands for (HF ByteLevel decoder: raw UTF-8 when not all symbols map).
    auto symbols_to_bytes = [&](const std::string& token, bool& mapped) {
      std::string bytes;
      mapped = true;
      for (size_t i = 0; i < token.size();) {
        const int32_t cp = next_code_point(token, i);
        if (cp < 0 || cp >= 512 || to_byte[cp] < 0) {
          mapped = false;
          return token;
        }
        bytes += static_cast<char>(to_byte[cp]);
      }
      return bytes;
    };

    std::unordered_map<std::string, int32_t> byte_vocab;
    for (const auto& [token, value] : model.at("vocab").items()) impl->vocab.emplace(token, read_id(value, origin, token));

    std::array<int32_t, 256> byte_ids;
    byte_ids.fill(-1);
    impl->ids.reserve(impl->vocab.size() + doc.value("added_tokens", json::array()).size());
    for (const auto& [token, id] : impl->vocab) {
      bool mapped = false;
      std::string bytes = symbols_to_bytes(token, mapped);
      if (mapped) {
        if (bytes.size() == 1) byte_ids[static_cast<unsigned char>(bytes[0])] = id;
        byte_vocab.emplace(bytes, id);
      }
      impl->ids.push_back(Impl::IdInfo{std::move(bytes), token, id});
    }
    if (model.contains("unk_token") && !model["unk_token"].is_null() &&
        std::find(byte_ids.begin(), byte_ids.end(), -1) != byte_ids.end())
      throw unsupported("BPE with an unk_token and a vocabulary missing single bytes");

    std::vector<Bpe::Merge> merges;
    const json& merge_list = model.at("merges");
    merges.reserve(merge_list.size());
    auto id_of = [&](const std::string& token) {
      auto it = impl->vocab.find(token);
      if (it == impl->vocab.end()) throw Error(origin + ": merge token \"" + token + "\" is not in the vocabulary");
      return it->second;
    };
    for (const json& merge : merge_list) {
      std::string left, right;
      if (merge.is_string()) {
        const std::string line = merge.get<std::string>();
        const size_t space = line.find(' ');
        if (space == std::string::npos) throw Error(origin + ": merge \"" + line + "\" is not two tokens");
        left = line.substr(0, space);
        right = line.substr(space + 1);
      } else if (merge.is_array() && merge.size() == 2) {
        left = merge[0].get<std::string>();
        right = merge[1].get<std::string>();
      } else {
        throw Error(origin + ": merge " + merge.dump() + " is not two tokens");
      }
      merges.push_back(Bpe::Merge{id_of(left), id_of(right), id_of(left + right)});
    }
    impl->bpe = std::make_unique<Bpe>(byte_ids, merges, std::move(byte_vocab), model.value("ignore_merges", false));

    // Added tokens.
    std::unordered_set<std::string> special_contents;
    for (const json& t : doc.value("added_tokens", json::array())) {
      const std::string content = t.at("content").get<std::string>();
      AddedToken token{read_id(t.at("id"), origin, content), content, "", t.value("special", false),
                       t.value("lstrip", false), t.value("rstrip", false), t.value("normalized", true),
                       t.value("single_word", false)};
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
    impl->sort_ids();
    for (Impl::IdInfo& info : impl->ids) info.skipped = special_contents.count(info.string) > 0;
  } catch (const json::exception& e) {
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
