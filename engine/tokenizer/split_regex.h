// The pre-tokenizer's split pattern (HF "Split" with a Regex, or ByteLevel's GPT-2 pattern), run
// with PCRE2 (UTF + UCP, JIT when available). HF runs these patterns with Oniguruma, which differs
// from PCRE2 in two ways that Qwen2's pattern reaches; the pattern is rewritten to Oniguruma's
// meaning before compiling:
//  - \s is Unicode White_Space in Oniguruma; PCRE2's \s also matches U+180E (MONGOLIAN VOWEL
//    SEPARATOR, in PCRE2's \h list), so \s and \S become explicit White_Space classes;
//  - (?i) in HF's build folds ASCII letters only (verified: (?i:'s) does not match "'ſ"), while
//    PCRE2 folds s with U+017F and k with U+212A, so caseless ASCII letters become [xX] classes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl::model {

class SplitRegex {
 public:
  // `origin` names the file and component for error messages.
  SplitRegex(const std::string& pattern, const std::string& origin);
  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;
  ~SplitRegex();

  // HF SplitDelimiterBehavior::Isolated: every match is a piece, and so is every non-empty gap.
  // `text` must be valid UTF-8.
  void split_isolated(std::string_view text, std::vector<std::string_view>& pieces) const;

  // Exposed for tests: the pattern as given to PCRE2.
  static std::string as_oniguruma(const std::string& pattern);

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace qwenvl::model
