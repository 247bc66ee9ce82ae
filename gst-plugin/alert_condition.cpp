// Parsing and evaluating alert-when (see alert_condition.h).
#include "alert_condition.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

namespace qwenvl::gst {
namespace {

using nlohmann::json;

// An answer is at most a few thousand tokens: these bound a pathological pattern (nested
// quantifiers) to milliseconds on such a text instead of PCRE2's defaults of ten million steps
// and 20 MB of backtracking memory.
constexpr uint32_t kMatchLimit = 1000000;  // calls of PCRE2's internal match()
constexpr uint32_t kDepthLimit = 10000;    // backtracking depth
constexpr uint32_t kHeapLimitKiB = 4096;   // backtracking memory

[[noreturn]] void fail(const std::string& text, const std::string& fault) {
  throw AlertConditionError("alert-when '" + text + "': " + fault);
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR message[256];
  if (pcre2_get_error_message(code, message, sizeof(message)) < 0) return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<const char*>(message);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

class RegexCondition final : public AlertCondition {
 public:
  RegexCondition(const std::string& text, const std::string& pattern) {
    if (pattern.empty()) fail(text, "regex: needs a PATTERN (regex:^ matches every answer)");
    int error = 0;
    PCRE2_SIZE offset = 0;
    // Answers of random or confused models may hold invalid UTF-8: match around it, never fail on it.
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (code_ == nullptr)
      fail(text, "bad regex at offset " + std::to_string(offset) + " of the PATTERN: " + pcre2_message(error));
    context_ = pcre2_match_context_create(nullptr);
    if (context_ == nullptr) {
      pcre2_code_free(code_);
      throw std::bad_alloc();
    }
    pcre2_set_match_limit(context_, kMatchLimit);
    pcre2_set_depth_limit(context_, kDepthLimit);
    pcre2_set_heap_limit(context_, kHeapLimitKiB);
  }
  ~RegexCondition() override {
    pcre2_match_context_free(context_);
    pcre2_code_free(code_);
  }
  RegexCondition(const RegexCondition&) = delete;
  RegexCondition& operator=(const RegexCondition&) = delete;

  AlertMatch evaluate(const std::string& answer) const override {
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_, nullptr);
    if (data == nullptr) return {false, "out of memory for the regex match"};
    const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(answer.data()), answer.size(), 0, 0, data, context_);
    pcre2_match_data_free(data);
    if (rc >= 0) return {true, ""};
    if (rc == PCRE2_ERROR_NOMATCH) return {false, ""};
    return {false, "the regex gave up on this answer: " + pcre2_message(rc)};
  }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_context* context_ = nullptr;
};

enum class Op { kEqual, kNotEqual, kLess, kLessEqual, kGreater, kGreaterEqual };

struct OpName {
  Op op;
  std::string_view name;
};
// Two-character operators first, so that "<=" is not read as "<" then "=".
constexpr OpName kOps[] = {{Op::kEqual, "=="},   {Op::kNotEqual, "!="}, {Op::kLessEqual, "<="},
                           {Op::kGreaterEqual, ">="}, {Op::kLess, "<"},     {Op::kGreater, ">"}};
constexpr std::string_view kOpCharacters = "=!<>";

class FieldCondition final : public AlertCondition {
 public:
  FieldCondition(const std::string& text, std::string_view expression) {
    const size_t at = expression.find_first_of(kOpCharacters);
    if (at == std::string_view::npos)
      fail(text, "field: needs PATH OP VALUE with OP one of ==, !=, <, <=, >, >= (as in field:people>=3)");
    const std::string_view path = trim(expression.substr(0, at));
    std::string_view rest = expression.substr(at);
    const OpName* op = nullptr;
    for (const OpName& candidate : kOps)
      if (rest.substr(0, candidate.name.size()) == candidate.name) {
        op = &candidate;
        break;
      }
    if (op == nullptr)
      fail(text, "unknown operator '" + std::string(rest.substr(0, 1)) + "' (use " + (rest[0] == '=' ? "==" : "!=") + ")");
    op_ = op->op;
    const std::string op_name(op->name);
    if (path.empty()) fail(text, "field: needs a PATH before " + op_name + " (as in field:people" + op_name + "3)");
    for (size_t start = 0; start <= path.size();) {
      const size_t end = std::min(path.find('.', start), path.size());
      if (end == start) fail(text, "the PATH '" + std::string(path) + "' has an empty name (two dots, or a dot at an end)");
      path_.emplace_back(path.substr(start, end - start));
      start = end + 1;
    }
    const std::string_view value_text = trim(rest.substr(op->name.size()));
    if (value_text.empty()) fail(text, "field: needs a VALUE after " + op_name);
    value_ = json::parse(value_text, nullptr, false);
    if (value_.is_discarded())
      fail(text, "the VALUE '" + std::string(value_text) +
                     "' is not a JSON scalar: a number, true, false, null or a \"quoted string\"");
    if (value_.is_structured()) fail(text, "the VALUE must be a JSON scalar, not an " + std::string(value_.type_name()));
    if (op_ != Op::kEqual && op_ != Op::kNotEqual && !value_.is_number())
      fail(text, op_name + " compares numbers: the VALUE '" + std::string(value_text) + "' is not a number");
  }

  AlertMatch evaluate(const std::string& answer) const override {
    const json document = json::parse(answer, nullptr, false);
    if (document.is_discarded()) return {};
    const json* node = find(document);
    if (node == nullptr) return {};
    switch (op_) {
      case Op::kEqual: return {*node == value_, ""};
      case Op::kNotEqual: return {*node != value_, ""};
      default: break;
    }
    if (!node->is_number()) return {};
    switch (op_) {
      case Op::kLess: return {*node < value_, ""};
      case Op::kLessEqual: return {*node <= value_, ""};
      case Op::kGreater: return {*node > value_, ""};
      default: return {*node >= value_, ""};
    }
  }

 private:
  // The member PATH names, or nullptr: objects are stepped into by name, arrays by a decimal index.
  const json* find(const json& document) const {
    const json* node = &document;
    for (const std::string& name : path_) {
      if (node->is_object()) {
        const auto it = node->find(name);
        if (it == node->end()) return nullptr;
        node = &*it;
      } else if (node->is_array() && !name.empty() && name.size() < 10 &&
                 name.find_first_not_of("0123456789") == std::string::npos) {
        const size_t index = std::stoul(name);
        if (index >= node->size()) return nullptr;
        node = &(*node)[index];
      } else {
        return nullptr;
      }
    }
    return node;
  }

  std::vector<std::string> path_;
  Op op_ = Op::kEqual;
  json value_;
};

}  // namespace

std::shared_ptr<const AlertCondition> AlertCondition::parse(const std::string& text) {
  constexpr std::string_view kRegex = "regex:", kField = "field:";
  const std::string_view view(text);
  if (view.substr(0, kRegex.size()) == kRegex) return std::make_shared<RegexCondition>(text, text.substr(kRegex.size()));
  if (view.substr(0, kField.size()) == kField) return std::make_shared<FieldCondition>(text, view.substr(kField.size()));
  fail(text, "must start with regex: (a PCRE2 pattern over the answer) or field: (PATH OP VALUE over the answer "
             "parsed as JSON)");
}

}  // namespace qwenvl::gst
