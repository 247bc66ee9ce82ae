// The parsed form of a Jinja template: expressions and statements, each with its source position
// so that a runtime fault names where in the template it happened.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja/value.h"

namespace qwenvl::model::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List,      // args: items
    Dict,      // args: key, value, key, value, ...
    Attr,      // args[0].name
    Item,      // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]], absent bounds are null
    Call,      // args[0](args[1..], kwargs)
    Filter,    // args[0] | name(args[1..], kwargs)
    Test,      // args[0] is [not] name(args[1..])
    Not,       // not args[0]
    Neg,       // -args[0]
    Pos,       // +args[0]
    Binary,    // args[0] name args[1]: + - * / // % ** ~
    Compare,   // args[0] ops[0] args[1] ops[1] args[2] ... (chained as in Python)
    And,
    Or,
    Cond,      // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;  // Test: "is not"
  bool tuple = false;    // List: written as a tuple, prints as one
};

struct Node;
using Body = std::vector<Node>;

struct Node {
  enum class Kind {
    Text,      // text
    Print,     // {{ expr }}
    If,        // conds[i] -> bodies[i]; a trailing body without cond is the else branch
    For,       // for targets in expr [if cond]: bodies[0], else bodies[1]
    Set,       // set targets = expr, or set targets[0].attr = expr
    SetBlock,  // set targets[0] %}bodies[0]{% endset
    Macro,     // macro name(params): bodies[0]
    Break,
    Continue,
    Scope,     // bodies[0] rendered as is ({% generation %})
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  std::vector<std::string> targets;
  std::string attr;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters with optional defaults
};

}  // namespace qwenvl::model::jinja
