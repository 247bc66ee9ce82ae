#include "structured/constraint_grammar.h"

#include <xgrammar/xgrammar.h>

#include <cstdio>
#include <optional>

#include "qwenvl/error.h"
#include "structured/number_bounds.h"
#include "structured/token_constraint.h"

namespace qwenvl::structured {

namespace {

// A choice as an EBNF string literal: quote and backslash escaped, control bytes as \uXXXX (xgrammar's
// \x takes any number of hex digits, so it could swallow a following digit); other UTF-8 as is.
std::string ebnf_literal(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

std::string choices_grammar(const std::vector<std::string>& choices) {
  std::string root = "root ::= ";
  for (size_t i = 0; i < choices.size(); ++i) root += (i ? " | " : "") + ebnf_literal(choices[i]);
  return root;
}

std::string xgrammar_reason(const std::string& what) {
  if (what.empty() || what[0] != '[') return what;
  const size_t stamp = what.find("] ");
  const size_t location = stamp == std::string::npos ? stamp : what.find(": ", stamp + 2);
  return location == std::string::npos ? what : what.substr(location + 2);
}

void check_constraint_grammar(const SamplingParams& params) {
  if (!check_constraint_request(params)) return;
  try {
    if (params.json_schema.empty())
      xgrammar::Grammar::FromEBNF(choices_grammar(params.choices));
    else
      xgrammar::Grammar::FromJSONSchema(bound_number_ranges(params.json_schema), kAnyWhitespace,
                                        /*indent=*/std::nullopt, json_separators(), kStrictMode);
  } catch (const std::exception& e) {
    throw Error(std::string(params.json_schema.empty() ? "choices" : "json_schema") + ": " + xgrammar_reason(e.what()));
  }
}

}  // namespace qwenvl::structured
