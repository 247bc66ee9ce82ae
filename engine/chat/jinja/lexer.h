// Splits a Jinja template into text and tag tokens as jinja2's lexer does under the environment
// transformers renders chat templates with (trim_blocks, lstrip_blocks, no trailing newline kept):
// the whitespace a template's author sees removed is removed here, at the same places.
#pragma once

#include <string>
#include <vector>

namespace qwenvl::model::jinja {

struct Token {
  enum class Type { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, End };
  Type type;
  std::string text;  // data text, name, decoded string literal, number spelling or operator
  int line = 1;
  int column = 1;
};

// Throws qwenvl::Error naming `template_name` and the line and column of a lexical fault.
std::vector<Token> tokenize(const std::string& source, const std::string& template_name);

}  // namespace qwenvl::model::jinja
