#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/split_regex.h"

#include <pcre2.h>

#include <cctype>
#include <vector>

#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

// Unicode White_Space (unchanged since Unicode 6.3), which is Oniguruma's \s.
constexpr const char* kWhiteSpaceItems =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}"
    "\\x{3000}";

// Copies an escape starting at pattern[i] == '\\' (with a braced or one-letter argument where the
// escape takes one) and returns the index after it.
size_t copy_escape(const std::string& pattern, size_t i, std::string& out) {
  size_t end = i + 2;
  if (end > pattern.size()) end = pattern.size();
  const char kind = i + 1 < pattern.size() ? pattern[i + 1] : '\0';
  if (std::string_view("pPxogkN").find(kind) != std::string_view::npos && end < pattern.size()) {
    if (pattern[end] == '{' || pattern[end] == '<') {
      const char close = pattern[end] == '{' ? '}' : '>';
      const size_t stop = pattern.find(close, end);
      end = stop == std::string::npos ? pattern.size() : stop + 1;
    } else if (kind == 'p' || kind == 'P') {
      end += 1;  // \pL
    }
  }
  out.append(pattern, i, end - i);
  return end;
}

}  // namespace

std::string SplitRegex::as_oniguruma(const std::string& pattern) {
  std::string out;
  std::vector<bool> caseless{false};  // one entry per open group
  size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '\\') {
      const char kind = i + 1 < pattern.size() ? pattern[i + 1] : '\0';
      if (kind == 's' || kind == 'S') {
        out += kind == 's' ? "[" : "[^";
        out += kWhiteSpaceItems;
        out += "]";
        i += 2;
      } else {
        i = copy_escape(pattern, i, out);
      }
    } else if (c == '[') {
      // A character class: \s expands in place; a caseless class keeps PCRE2's own folding.
      std::string cls = "[";
      size_t j = i + 1;
      if (j < pattern.size() && pattern[j] == '^') cls += pattern[j++];
      if (j < pattern.size() && pattern[j] == ']') cls += pattern[j++];
      while (j < pattern.size() && pattern[j] != ']') {
        if (pattern[j] == '\\') {
          if (j + 1 < pattern.size() && pattern[j + 1] == 's') {
            cls += kWhiteSpaceItems;
            j += 2;
          } else {
            j = copy_escape(pattern, j, cls);
          }
        } else if (pattern.compare(j, 2, "[:") == 0) {
          const size_t stop = pattern.find(":]", j + 2);
          const size_t end = stop == std::string::npos ? pattern.size() : stop + 2;
          cls.append(pattern, j, end - j);
          j = end;
        } else {
          cls += pattern[j++];
        }
      }
      if (j < pattern.size()) cls += pattern[j++];
      out += caseless.back() ? "(?i:" + cls + ")" : cls;
      i = j;
    } else if (c == '(') {
      bool scope = caseless.back();
      size_t j = i + 1;
      if (j < pattern.size() && pattern[j] == '?') {
        // Inline flags (?flags) or (?flags:...): take i out, keep the others.
        size_t k = j + 1;
        std::string kept;
        bool negate = false, any_flag = false, sets_i = false, clears_i = false;
        while (k < pattern.size() && std::string_view("imsxnUJ-").find(pattern[k]) != std::string_view::npos) {
          any_flag = true;
          if (pattern[k] == '-') negate = true;
          if (pattern[k] == 'i') {
            (negate ? clears_i : sets_i) = true;
          } else {
            kept += pattern[k];
          }
          ++k;
        }
        if (any_flag && k < pattern.size() && (pattern[k] == ':' || pattern[k] == ')')) {
          if (kept == "-") kept.clear();
          if (sets_i) scope = true;
          if (clears_i) scope = false;
          if (pattern[k] == ':') {
            out += "(?" + kept + ":";
            caseless.push_back(scope);
          } else {
            if (!kept.empty()) out += "(?" + kept + ")";
            caseless.back() = scope;  // applies to the rest of the enclosing group
          }
          i = k + 1;
          continue;
        }
      }
      out += c;
      caseless.push_back(scope);
      ++i;
    } else if (c == ')') {
      if (caseless.size() > 1) caseless.pop_back();
      out += c;
      ++i;
    } else if (caseless.back() && std::isalpha(static_cast<unsigned char>(c))) {
      out += '[';
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out += ']';
      ++i;
    } else if (caseless.back() && (static_cast<unsigned char>(c) & 0x80)) {
      size_t end = i + 1;
      while (end < pattern.size() && (static_cast<unsigned char>(pattern[end]) & 0xC0) == 0x80) ++end;
      out += "(?i:" + pattern.substr(i, end - i) + ")";
      i = end;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

struct SplitRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

SplitRegex::SplitRegex(const std::string& pattern, const std::string& origin) : code_(std::make_unique<Code>()) {
  const std::string rewritten = as_oniguruma(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw Error(origin + ": cannot compile the split pattern \"" + pattern + "\": " +
                reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when absent
}

SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;
SplitRegex& SplitRegex::operator=(SplitRegex&&) noexcept = default;
SplitRegex::~SplitRegex() = default;

void SplitRegex::split_isolated(std::string_view text, std::vector<std::string_view>& pieces) const {
  struct MatchData {
    pcre2_match_data* data;
    ~MatchData() { pcre2_match_data_free(data); }
  } match{pcre2_match_data_create_from_pattern(code_->code, nullptr)};
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t gap = 0, at = 0;
  while (at <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, match.data, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(code_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match.data,
                       nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error("tokenizer: the split pattern failed on the input (PCRE2 error " + std::to_string(rc) + ")");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
    const size_t start = ovector[0], end = ovector[1];
    if (end == start) {  // an empty match splits nothing; step over one character
      at = end + 1;
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
      continue;
    }
    if (start > gap) pieces.push_back(text.substr(gap, start - gap));
    pieces.push_back(text.substr(start, end - start));
    gap = at = end;
  }
  if (gap < text.size()) pieces.push_back(text.substr(gap));
}

}  // namespace qwenvl::model
