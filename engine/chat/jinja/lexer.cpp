#include "chat/jinja/lexer.h"

#include <cstring>

#include <fmt/format.h>

#include "qwenvl/error.h"

namespace qwenvl::model::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// jinja2 normalises every line break to "\n" and drops one trailing newline (keep_trailing_newline=False).
std::string normalize(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& name) : src_(normalize(source)), name_(name) {}

  std::vector<Token> run() {
    bool line_starting = true;  // did the text matched last end with a newline (jinja2's rule)?
    while (pos_ < src_.size()) {
      size_t start = find_tag_start(pos_);
      if (start == std::string::npos) {
        emit(Token::Type::Data, src_.substr(pos_), pos_);
        break;
      }
      char kind = src_[start + 1];  // '{', '%' or '#'
      char sign = start + 2 < src_.size() ? src_[start + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      std::string text = src_.substr(pos_, start - pos_);
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: spaces between the line's start and a block or comment tag go.
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool all_space = true;
          for (size_t i = l_pos; i < text.size(); ++i) all_space = all_space && is_space(text[i]);
          if (all_space) text.resize(l_pos);
        }
      }
      if (!text.empty()) emit(Token::Type::Data, text, pos_);
      size_t after = start + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        line_starting = lex_comment(start, after);
      } else if (kind == '%' && lex_raw(start, after, line_starting)) {
        // raw block emitted as data
      } else {
        line_starting = lex_tag(kind, start, after);
      }
    }
    emit(Token::Type::End, "", src_.size());
    return std::move(tokens_);
  }

 private:
  size_t find_tag_start(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  [[noreturn]] void fail(size_t at, const std::string& what) const {
    auto [line, col] = line_col(at);
    throw Error(fmt::format("chat template {}:{}:{}: {}", name_, line, col, what));
  }

  // Counted on from the last position asked about (tokens come in order), so that lexing stays linear.
  std::pair<int, int> line_col(size_t at) const {
    if (at < counted_) {
      counted_ = 0;
      line_ = 1;
      line_start_ = 0;
    }
    for (; counted_ < at && counted_ < src_.size(); ++counted_)
      if (src_[counted_] == '\n') {
        ++line_;
        line_start_ = counted_ + 1;
      }
    return {line_, static_cast<int>(at - line_start_) + 1};
  }

  void emit(Token::Type type, std::string text, size_t at) {
    auto [line, col] = line_col(at);
    tokens_.push_back(Token{type, std::move(text), line, col});
  }

  // Consumes a tag end's trailing whitespace: all of it after "-", one newline (trim_blocks) after a
  // plain block or comment end, none after "+". Returns whether the consumed text ended in a newline.
  bool finish_tag(char sign, bool trim_newline) {
    bool newline = false;
    if (sign == '-') {
      while (pos_ < src_.size() && is_space(src_[pos_])) newline = src_[pos_++] == '\n';
    } else if (sign != '+' && trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      newline = true;
    }
    return newline;
  }

  bool lex_comment(size_t start, size_t after) {
    size_t end = src_.find("#}", after);
    if (end == std::string::npos) fail(start, "missing end of comment tag");
    char sign = end > after && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
    pos_ = end + 2;
    return finish_tag(sign, true);
  }

  // {% raw %}...{% endraw %}: the text between is data, tags in it are not interpreted.
  bool lex_raw(size_t start, size_t after, bool& line_starting) {
    size_t p = after;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_name_char(src_[p + 3]))) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    char sign = '\0';
    if (p < src_.size() && src_[p] == '-') sign = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) fail(start, "expected '%}' after 'raw'");
    pos_ = p + 2;
    finish_tag(sign, false);  // jinja2 trims after a raw opener only for "-"
    size_t search = pos_;
    while (true) {
      size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) fail(start, "missing end of raw directive");
      size_t q = tag + 2;
      char open_sign = (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ? src_[q++] : '\0';
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      char close_sign = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) close_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) {
        search = tag + 2;
        continue;
      }
      std::string text = src_.substr(pos_, tag - pos_);
      if (open_sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      }
      if (!text.empty()) emit(Token::Type::Data, text, pos_);
      pos_ = q + 2;
      line_starting = finish_tag(close_sign, true);
      return true;
    }
  }

  bool lex_tag(char kind, size_t start, size_t after) {
    bool block = kind == '%';
    emit(block ? Token::Type::BlockBegin : Token::Type::VarBegin, "", start);
    pos_ = after;
    std::vector<char> brackets;
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) fail(start, block ? "unexpected end of template, expected '%}'"
                                                 : "unexpected end of template, expected '}}'");
      if (brackets.empty()) {
        const char* close = block ? "%}" : "}}";
        char sign = '\0';
        size_t p = pos_;
        if (src_[p] == '-' || (block && src_[p] == '+')) sign = src_[p++];
        if (src_.compare(p, 2, close) == 0) {
          emit(block ? Token::Type::BlockEnd : Token::Type::VarEnd, "", pos_);
          pos_ = p + 2;
          return finish_tag(sign, block);
        }
      }
      lex_expression_token(brackets);
    }
  }

  void lex_expression_token(std::vector<char>& brackets) {
    size_t at = pos_;
    char c = src_[pos_];
    if (is_digit(c)) return lex_number();
    if (is_name_start(c)) {
      while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
      return emit(Token::Type::Name, src_.substr(at, pos_ - at), at);
    }
    if (c == '\'' || c == '"') return lex_string();
    static const char* const two_char_ops[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : two_char_ops)
      if (src_.compare(pos_, 2, op) == 0) {
        pos_ += 2;
        return emit(Token::Type::Op, op, at);
      }
    if (std::strchr("+-/*%~[](){}><=.:|,;", c) == nullptr) fail(at, fmt::format("unexpected character '{}'", c));
    if (c == '(' || c == '[' || c == '{') brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) fail(at, fmt::format("unexpected '{}'", c));
      if (brackets.back() != c) fail(at, fmt::format("unexpected '{}', expected '{}'", c, brackets.back()));
      brackets.pop_back();
    }
    ++pos_;
    emit(Token::Type::Op, std::string(1, c), at);
  }

  void lex_number() {
    size_t at = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || (src_[pos_] == '_' && pos_ + 1 < src_.size() &&
                                                              is_digit(src_[pos_ + 1]))))
        ++pos_;
    };
    digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      ++pos_;
      digits();
      is_float = true;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && is_digit(src_[p])) {
        pos_ = p;
        digits();
        is_float = true;
      }
    }
    std::string text = src_.substr(at, pos_ - at);
    std::string clean;
    for (char ch : text)
      if (ch != '_') clean += ch;
    emit(is_float ? Token::Type::Float : Token::Type::Int, clean, at);
  }

  // Python string-literal escapes (jinja2 decodes literals with "unicode-escape").
  void lex_string() {
    size_t at = pos_;
    char quote = src_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) fail(at, "unterminated string literal");
      char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) fail(at, "unterminated string literal");
      char e = src_[pos_++];
      auto hex = [&](int n) {
        if (pos_ + n > src_.size()) fail(at, "truncated escape in string literal");
        uint32_t cp = 0;
        for (int i = 0; i < n; ++i) {
          char h = src_[pos_++];
          cp <<= 4;
          if (is_digit(h)) cp |= h - '0';
          else if (h >= 'a' && h <= 'f') cp |= h - 'a' + 10;
          else if (h >= 'A' && h <= 'F') cp |= h - 'A' + 10;
          else fail(at, "invalid escape in string literal");
        }
        append_utf8(out, cp);
      };
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = e - '0';
            for (int i = 0; i < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++i)
              cp = cp * 8 + (src_[pos_++] - '0');
            append_utf8(out, cp);
          } else {
            out += '\\';  // Python keeps unknown escapes as written
            out += e;
          }
      }
    }
    emit(Token::Type::String, out, at);
  }

  std::string src_;
  const std::string& name_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  mutable size_t counted_ = 0, line_start_ = 0;  // line_col's position, and where its line starts
  mutable int line_ = 1;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const std::string& template_name) {
  return Lexer(source, template_name).run();
}

}  // namespace qwenvl::model::jinja
