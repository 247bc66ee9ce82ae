// Streaming detokenization: text is handed out as soon as its bytes form settled UTF-8, never a
// partial character; the concatenation of every push() and the final flush() equals
// Tokenizer::decode(all ids, skip_special_tokens), U+FFFD replacements included.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace qwenvl::model {

class IncrementalDecoder {
 public:
  // `tokenizer` must outlive the decoder.
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);

  // The text that `id` completes (often empty while a multi-byte character is still open).
  std::string push(int32_t id);
  // Whatever is left at the end of the stream (an unfinished character becomes U+FFFD).
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes of a character not yet complete
};

}  // namespace qwenvl::model
