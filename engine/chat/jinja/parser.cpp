#include "chat/jinja/parser.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>

#include <fmt/format.h>

#include "qwenvl/error.h"

namespace qwenvl::model::jinja {
namespace {

using T = Token::Type;

// Statements and expressions nested deeper than this are refused: parsing, rendering and freeing the
// tree recurse once per level, and a few thousand levels overflow a thread's stack. Python's own
// parser stops at 200 nested parentheses; real chat templates nest fewer than 10 levels.
constexpr int kMaxNesting = 100;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& name) : toks_(tokens), name_(name) {}

  Body parse_template() {
    std::string found;
    Body body = parse_until({}, found);
    return body;
  }

 private:
  // One level of nesting per call of add(), all given back when it goes out of scope.
  class Nesting {
   public:
    explicit Nesting(Parser& parser) : parser_(parser) {}
    ~Nesting() { parser_.depth_ -= levels_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    void add(const Token& at) {
      ++levels_;
      if (++parser_.depth_ > kMaxNesting)
        parser_.fail(at, fmt::format("nested deeper than {} levels", kMaxNesting));
    }

   private:
    Parser& parser_;
    int levels_ = 0;
  };

  const Token& peek(size_t ahead = 0) const { return toks_[std::min(pos_ + ahead, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }

  [[noreturn]] void fail(const Token& at, const std::string& what) const {
    throw Error(fmt::format("chat template {}:{}:{}: {}", name_, at.line, at.column, what));
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case T::Data: return "text";
      case T::VarBegin: return "'{{'";
      case T::VarEnd: return "'}}'";
      case T::BlockBegin: return "'{%'";
      case T::BlockEnd: return "'%}'";
      case T::Name: return "'" + t.text + "'";
      case T::String: return "string literal";
      case T::Int:
      case T::Float: return "number " + t.text;
      case T::Op: return "'" + t.text + "'";
      case T::End: return "end of template";
    }
    return "?";
  }

  bool is_op(const char* op, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.type == T::Op && t.text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.type == T::Name && t.text == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(peek(), fmt::format("expected '{}', found {}", op, describe(peek())));
    next();
  }
  void expect(T type, const char* what) {
    if (peek().type != type) fail(peek(), fmt::format("expected {}, found {}", what, describe(peek())));
    next();
  }
  std::string expect_name() {
    if (peek().type != T::Name) fail(peek(), fmt::format("expected a name, found {}", describe(peek())));
    return next().text;
  }

  std::shared_ptr<Expr> make(Expr::Kind kind, const Token& at) {
    auto e = std::make_shared<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  Node make_node(Node::Kind kind, const Token& at) {
    Node n;
    n.kind = kind;
    n.line = at.line;
    n.column = at.column;
    return n;
  }

  // Statements up to a block tag named in `enders` (its name is consumed and returned in `found`).
  Body parse_until(std::initializer_list<const char*> enders, std::string& found) {
    Nesting nesting(*this);
    nesting.add(peek());
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.type == T::End) {
        if (enders.size() == 0) return body;
        std::string names;
        for (const char* e : enders) names += (names.empty() ? "'" : " or '") + std::string(e) + "'";
        fail(t, "unexpected end of template, expected " + names);
      }
      if (t.type == T::Data) {
        Node n = make_node(Node::Kind::Text, t);
        n.text = next().text;
        body.push_back(std::move(n));
      } else if (t.type == T::VarBegin) {
        Node n = make_node(Node::Kind::Print, next());
        n.expr = parse_tuple(true);
        expect(T::VarEnd, "'}}'");
        body.push_back(std::move(n));
      } else if (t.type == T::BlockBegin) {
        const Token& tag = peek(1);
        if (tag.type != T::Name) fail(tag, fmt::format("expected a tag name, found {}", describe(tag)));
        for (const char* e : enders)
          if (tag.text == e) {
            next();
            found = next().text;
            return body;
          }
        next();
        body.push_back(parse_statement());
      } else {
        fail(t, fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  Node parse_statement() {
    const Token& tag = next();
    const std::string& name = tag.text;
    if (name == "if") return parse_if(tag);
    if (name == "for") return parse_for(tag);
    if (name == "set") return parse_set(tag);
    if (name == "macro") return parse_macro(tag);
    if (name == "break" || name == "continue") {
      Node n = make_node(name == "break" ? Node::Kind::Break : Node::Kind::Continue, tag);
      expect(T::BlockEnd, "'%}'");
      return n;
    }
    if (name == "generation") {  // transformers' assistant-mask extension: renders its body
      Node n = make_node(Node::Kind::Scope, tag);
      expect(T::BlockEnd, "'%}'");
      std::string found;
      n.bodies.push_back(parse_until({"endgeneration"}, found));
      expect(T::BlockEnd, "'%}'");
      return n;
    }
    static const char* const known_unsupported[] = {"filter", "call",   "include", "import", "from",
                                                    "extends", "block", "with",    "autoescape", "do"};
    for (const char* k : known_unsupported)
      if (name == k) fail(tag, fmt::format("the '{}' tag is not supported", name));
    fail(tag, fmt::format("unknown tag '{}'", name));
  }

  Node parse_if(const Token& tag) {
    Node n = make_node(Node::Kind::If, tag);
    n.conds.push_back(parse_tuple(true));
    expect(T::BlockEnd, "'%}'");
    while (true) {
      std::string found;
      n.bodies.push_back(parse_until({"elif", "else", "endif"}, found));
      if (found == "elif") {
        n.conds.push_back(parse_tuple(true));
        expect(T::BlockEnd, "'%}'");
      } else if (found == "else") {
        expect(T::BlockEnd, "'%}'");
        n.bodies.push_back(parse_until({"endif"}, found));
        expect(T::BlockEnd, "'%}'");
        return n;
      } else {
        expect(T::BlockEnd, "'%}'");
        return n;
      }
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> targets;
    bool paren = is_op("(");
    if (paren) next();
    targets.push_back(expect_name());
    while (is_op(",")) {
      next();
      if (peek().type != T::Name || is_name("in")) break;  // trailing comma
      targets.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return targets;
  }

  Node parse_for(const Token& tag) {
    Node n = make_node(Node::Kind::For, tag);
    n.targets = parse_targets();
    if (!is_name("in")) fail(peek(), fmt::format("expected 'in', found {}", describe(peek())));
    next();
    n.expr = parse_tuple(false);
    if (is_name("if")) {
      next();
      n.cond = parse_expression(true);
    }
    if (is_name("recursive")) fail(peek(), "recursive loops are not supported");
    expect(T::BlockEnd, "'%}'");
    std::string found;
    n.bodies.push_back(parse_until({"else", "endfor"}, found));
    if (found == "else") {
      expect(T::BlockEnd, "'%}'");
      n.bodies.push_back(parse_until({"endfor"}, found));
    }
    expect(T::BlockEnd, "'%}'");
    return n;
  }

  Node parse_set(const Token& tag) {
    Node n = make_node(Node::Kind::Set, tag);
    if (peek().type == T::Name && is_op(".", 1)) {
      n.targets.push_back(next().text);
      next();
      n.attr = expect_name();
    } else {
      n.targets = parse_targets();
    }
    if (is_op("=")) {
      next();
      n.expr = parse_tuple(true);
      expect(T::BlockEnd, "'%}'");
      return n;
    }
    if (n.targets.size() != 1 || !n.attr.empty()) fail(peek(), "expected '='");
    n.kind = Node::Kind::SetBlock;
    expect(T::BlockEnd, "'%}'");
    std::string found;
    n.bodies.push_back(parse_until({"endset"}, found));
    expect(T::BlockEnd, "'%}'");
    return n;
  }

  Node parse_macro(const Token& tag) {
    Node n = make_node(Node::Kind::Macro, tag);
    n.targets.push_back(expect_name());
    expect_op("(");
    while (!is_op(")")) {
      if (!n.params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string param = expect_name();
      ExprPtr fallback;
      if (is_op("=")) {
        next();
        fallback = parse_expression(true);
      }
      n.params.emplace_back(param, fallback);
    }
    next();
    expect(T::BlockEnd, "'%}'");
    std::string found;
    n.bodies.push_back(parse_until({"endmacro"}, found));
    if (peek().type == T::Name && peek().text == n.targets[0]) next();
    expect(T::BlockEnd, "'%}'");
    return n;
  }

  // --- expressions, lowest precedence first (jinja2's parser.py) ---

  ExprPtr parse_tuple(bool with_condexpr) {
    const Token& start = peek();
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto tuple = make(Expr::Kind::List, start);
    tuple->tuple = true;
    tuple->args.push_back(first);
    while (is_op(",")) {
      next();
      if (peek().type == T::VarEnd || peek().type == T::BlockEnd || is_op(")") || is_name("if")) break;
      tuple->args.push_back(parse_expression(with_condexpr));
    }
    return tuple;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nesting nesting(*this);
    nesting.add(peek());
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  // Operator chains build trees one level deeper per operator: each counts as nesting.
  ExprPtr parse_condexpr() {
    Nesting nesting(*this);
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      nesting.add(peek());
      auto cond = make(Expr::Kind::Cond, next());
      cond->args.push_back(parse_or());
      cond->args.insert(cond->args.begin() + 1, expr);
      if (is_name("else")) {
        next();
        cond->args.push_back(parse_condexpr());
      } else {
        cond->args.push_back(nullptr);
      }
      expr = cond;
    }
    return expr;
  }

  ExprPtr parse_or() {
    Nesting nesting(*this);
    ExprPtr left = parse_and();
    while (is_name("or")) {
      nesting.add(peek());
      auto e = make(Expr::Kind::Or, next());
      e->args = {left, parse_and()};
      left = e;
    }
    return left;
  }

  ExprPtr parse_and() {
    Nesting nesting(*this);
    ExprPtr left = parse_not();
    while (is_name("and")) {
      nesting.add(peek());
      auto e = make(Expr::Kind::And, next());
      e->args = {left, parse_not()};
      left = e;
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nesting nesting(*this);
      nesting.add(peek());
      auto e = make(Expr::Kind::Not, next());
      e->args = {parse_not()};
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& start = peek();
    ExprPtr first = parse_math1();
    std::shared_ptr<Expr> cmp;
    while (true) {
      std::string op;
      const Token& t = peek();
      if (t.type == T::Op && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" ||
                              t.text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare, start);
        cmp->args.push_back(first);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? cmp : first;
  }

  ExprPtr binary_chain(std::initializer_list<const char*> ops, ExprPtr (Parser::*operand)()) {
    Nesting nesting(*this);
    ExprPtr left = (this->*operand)();
    while (true) {
      const char* matched = nullptr;
      for (const char* op : ops)
        if (is_op(op)) matched = op;
      if (!matched) return left;
      nesting.add(peek());
      auto e = make(Expr::Kind::Binary, next());
      e->name = matched;
      e->args = {left, (this->*operand)()};
      left = e;
    }
  }

  ExprPtr parse_math1() { return binary_chain({"+", "-"}, &Parser::parse_concat); }
  ExprPtr parse_concat() { return binary_chain({"~"}, &Parser::parse_math2); }
  ExprPtr parse_math2() { return binary_chain({"*", "/", "//", "%"}, &Parser::parse_pow); }
  ExprPtr parse_pow() { return binary_chain({"**"}, &Parser::parse_unary_filtered); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      Nesting nesting(*this);
      nesting.add(peek());
      const Token& t = next();
      auto e = make(t.text == "-" ? Expr::Kind::Neg : Expr::Kind::Pos, t);
      e->args = {parse_unary(false)};
      node = e;
    } else {
      node = parse_primary();
    }
    node = parse_postfix(node);
    if (with_filter) node = parse_filter_expr(node);
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case T::Name: {
        next();
        auto e = make(Expr::Kind::Literal, t);
        if (t.text == "true" || t.text == "True") e->value = Value(true);
        else if (t.text == "false" || t.text == "False") e->value = Value(false);
        else if (t.text == "none" || t.text == "None") e->value = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = t.text;
        }
        return e;
      }
      case T::String: {
        std::string s;
        while (peek().type == T::String) s += next().text;  // adjacent literals concatenate
        auto e = make(Expr::Kind::Literal, t);
        e->value = Value(std::move(s));
        return e;
      }
      case T::Int: {
        next();
        auto e = make(Expr::Kind::Literal, t);
        int64_t v = 0;
        auto res = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (res.ec != std::errc()) fail(t, "integer literal out of range");
        e->value = Value(v);
        return e;
      }
      case T::Float: {
        next();
        auto e = make(Expr::Kind::Literal, t);
        e->value = Value(parse_float(t.text));
        return e;
      }
      case T::Op:
        if (t.text == "(") {
          next();
          if (is_op(")")) {
            next();
            auto empty = make(Expr::Kind::List, t);
            empty->tuple = true;
            return empty;
          }
          ExprPtr inner = parse_tuple(true);
          expect_op(")");
          return inner;
        }
        if (t.text == "[") {
          next();
          auto e = make(Expr::Kind::List, t);
          while (!is_op("]")) {
            if (!e->args.empty()) {
              expect_op(",");
              if (is_op("]")) break;
            }
            e->args.push_back(parse_expression(true));
          }
          next();
          return e;
        }
        if (t.text == "{") {
          next();
          auto e = make(Expr::Kind::Dict, t);
          while (!is_op("}")) {
            if (!e->args.empty()) {
              expect_op(",");
              if (is_op("}")) break;
            }
            e->args.push_back(parse_expression(true));
            expect_op(":");
            e->args.push_back(parse_expression(true));
          }
          next();
          return e;
        }
        break;
      default: break;
    }
    fail(t, fmt::format("unexpected {}", describe(t)));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    Nesting nesting(*this);
    while (true) {
      if (is_op(".") || is_op("[") || is_op("(")) nesting.add(peek());
      if (is_op(".")) {
        const Token& dot = next();
        const Token& t = peek();
        if (t.type == T::Name) {
          auto e = make(Expr::Kind::Attr, dot);
          e->name = next().text;
          e->args = {node};
          node = e;
        } else if (t.type == T::Int) {
          auto e = make(Expr::Kind::Item, dot);
          auto index = make(Expr::Kind::Literal, t);
          int64_t i = 0;
          auto res = std::from_chars(t.text.data(), t.text.data() + t.text.size(), i);
          if (res.ec != std::errc()) fail(t, "integer literal out of range");
          next();
          index->value = Value(i);
          e->args = {node, index};
          node = e;
        } else {
          fail(t, fmt::format("expected an attribute name, found {}", describe(t)));
        }
      } else if (is_op("[")) {
        node = parse_subscript(node);
      } else if (is_op("(")) {
        node = parse_call(node);
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& open = next();
    ExprPtr parts[3];
    int colons = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        next();
        if (++colons > 2) fail(peek(), "too many ':' in subscript");
        continue;
      }
      if (parts[colons]) fail(peek(), fmt::format("unexpected {} in subscript", describe(peek())));
      parts[colons] = parse_expression(true);
    }
    next();
    if (colons == 0) {
      if (!parts[0]) fail(open, "empty subscript");
      auto e = make(Expr::Kind::Item, open);
      e->args = {node, parts[0]};
      return e;
    }
    auto e = make(Expr::Kind::Slice, open);
    e->args = {node, parts[0], parts[1], parts[2]};
    return e;
  }

  void parse_call_args(Expr& call) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        expect_op(",");
        if (is_op(")")) break;
      }
      first = false;
      if (peek().type == T::Name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        call.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail(peek(), "positional argument after a keyword argument");
        call.args.push_back(parse_expression(true));
      }
    }
    next();
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(Expr::Kind::Call, peek());
    e->line = callee->line;  // errors point at what was called
    e->column = callee->column;
    e->args.push_back(callee);
    parse_call_args(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    Nesting nesting(*this);
    while (true) {
      if (is_op("|") || is_name("is") || is_op("(")) nesting.add(peek());
      if (is_op("|")) {
        next();
        const Token& t = peek();
        auto e = make(Expr::Kind::Filter, t);
        e->name = expect_name();
        while (is_op(".")) {  // dotted filter names as jinja2 allows
          next();
          e->name += "." + expect_name();
        }
        e->args.push_back(node);
        if (is_op("(")) parse_call_args(*e);
        node = e;
      } else if (is_name("is")) {
        next();
        auto e = make(Expr::Kind::Test, peek());
        if (is_name("not")) {
          next();
          e->negated = true;
        }
        e->name = expect_name();
        e->args.push_back(node);
        const Token& t = peek();
        if (is_op("(")) {
          parse_call_args(*e);
        } else if ((t.type == T::Name || t.type == T::String || t.type == T::Int || t.type == T::Float ||
                    is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail(t, "you cannot chain multiple tests with 'is'");
          e->args.push_back(parse_postfix(parse_primary()));
        }
        node = e;
      } else if (is_op("(")) {
        node = parse_call(node);
      } else {
        return node;
      }
    }
  }

  // Python's float(): beyond the largest double is inf, below the smallest is 0 (from_chars refuses both).
  static double parse_float(const std::string& text) {
    double v = 0;
    auto res = std::from_chars(text.data(), text.data() + text.size(), v);
    if (res.ec == std::errc::result_out_of_range)
      return text.find_first_of("eE") != std::string::npos && text.find('-') != std::string::npos ? 0.0 : HUGE_VAL;
    return v;
  }

  const std::vector<Token>& toks_;
  const std::string& name_;
  size_t pos_ = 0;
  int depth_ = 0;  // levels of nesting open now
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& template_name) {
  return Parser(tokens, template_name).parse_template();
}

}  // namespace qwenvl::model::jinja
