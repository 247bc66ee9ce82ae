#include "tokenizer/incremental_decoder.h"

#include "tokenizer/utf8.h"

namespace qwenvl::model {

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDecoder::push(int32_t id) {
  tokenizer_.append_token_bytes(id, skip_special_tokens_, pending_);
  // Lossy decoding is left to right and never looks back, so a settled prefix decodes the same
  // whatever follows it.
  const size_t settled = utf8_settled_prefix(pending_);
  std::string text = utf8_lossy(std::string_view(pending_).substr(0, settled));
  pending_.erase(0, settled);
  return text;
}

std::string IncrementalDecoder::flush() {
  std::string text = utf8_lossy(pending_);
  pending_.clear();
  return text;
}

}  // namespace qwenvl::model
