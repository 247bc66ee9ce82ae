// Qwen2's byte-level BPE tokenizer, read from a Hugging Face tokenizer.json and matching HF
// tokenizers 0.23 (what transformers 5.17 calls): encode(text) = tokenizer(text,
// add_special_tokens=False).input_ids and decode(ids, skip) = tokenizer.decode(ids, skip).
// Pipeline: added tokens split out first (non-normalized ones on the raw text, normalized ones after
// the normalizer), normalizer (NFC), pre-tokenizer (split regex, byte-level), BPE by merge rank.
// Components outside this pipeline are rejected with a qwenvl::Error naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl::model {

class Tokenizer {
 public:
  // tokenizer.json of a model directory.
  static Tokenizer from_model_dir(const std::filesystem::path& dir);
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `utf8` (added tokens matched first, no special tokens added). Invalid UTF-8 is
  // repaired first, each maximal ill-formed subpart becoming U+FFFD.
  std::vector<int32_t> encode(std::string_view utf8) const;

  // Text of `ids`; unknown ids are dropped and invalid byte sequences become U+FFFD, as in HF.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  // The raw bytes `id` contributes to decode() (nothing for unknown ids and, when asked, special
  // tokens). decode(ids) is the lossy UTF-8 conversion of their concatenation.
  void append_token_bytes(int32_t id, bool skip_special_tokens, std::string& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token's string as tokenizer.json writes it (byte-level symbols for BPE tokens).
  std::string id_to_token(int32_t id) const;
  // Distinct tokens, added tokens included (HF get_vocab_size(with_added_tokens=True)).
  int64_t vocab_size() const;
  bool is_special(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwenvl::model
