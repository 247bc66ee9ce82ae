// Builds the statement tree of a template from its tokens, following jinja2's grammar and operator
// precedence. Syntax outside the supported subset is an error naming the file, line and column.
#pragma once

#include <string>
#include <vector>

#include "chat/jinja/ast.h"
#include "chat/jinja/lexer.h"

namespace qwenvl::model::jinja {

Body parse(const std::vector<Token>& tokens, const std::string& template_name);

}  // namespace qwenvl::model::jinja
