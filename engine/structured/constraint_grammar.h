// A request's constraint as xgrammar's grammar, shared by the compiler (token_constraint.cpp) and the
// check of qwenvl/constraint_check.h: the pinned JSON grammar's options, and choices as EBNF.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::structured {

// The pinned grammar (token_constraint.h): compact JSON, these separators, no property the schema
// does not name (xgrammar's strict mode).
constexpr bool kAnyWhitespace = false;
constexpr bool kStrictMode = true;
inline std::pair<std::string, std::string> json_separators() { return {",", ":"}; }

// The choices as one EBNF rule `root` whose alternatives are the choices' literal texts.
std::string choices_grammar(const std::vector<std::string>& choices);

// xgrammar's error message without the time and source location it starts with ("[18:47:38]
// /path/json_schema_converter.cc:5082: minLength 5 is greater than maxLength 2").
std::string xgrammar_reason(const std::string& what);

// check_constraint_request, then xgrammar's conversion of the schema (number ranges bounded) or of
// the choices to a grammar, without a vocabulary; throws qwenvl::Error with the reason, prefixed
// "json_schema: " or "choices: " as ConstraintCompiler::compile's are.
void check_constraint_grammar(const SamplingParams& params);

}  // namespace qwenvl::structured
