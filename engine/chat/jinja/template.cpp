#include "chat/jinja/template.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "chat/jinja/builtins.h"
#include "chat/jinja/lexer.h"
#include "chat/jinja/parser.h"
#include "qwenvl/error.h"

namespace qwenvl::model::jinja {
namespace {

using Frame = std::unordered_map<std::string, Value>;

// Python's ints never overflow; ours are 64-bit, and a result that does not fit is a fault, never a wrap.
[[noreturn]] void integer_overflow(const std::string& op) {
  throw TemplateFault(fmt::format("integer overflow in '{}'", op));
}
int64_t add_int(int64_t a, int64_t b, const std::string& op) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) integer_overflow(op);
  return r;
}
int64_t sub_int(int64_t a, int64_t b, const std::string& op) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) integer_overflow(op);
  return r;
}
int64_t mul_int(int64_t a, int64_t b, const std::string& op) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) integer_overflow(op);
  return r;
}

// x ** n for n >= 0 by squaring; the base is squared only while bits of n remain, so an overflow there
// means the result overflows too.
int64_t int_power(int64_t x, int64_t n) {
  int64_t result = 1;
  while (n > 0) {
    if (n & 1) result = mul_int(result, x, "**");
    n >>= 1;
    if (n > 0) x = mul_int(x, x, "**");
  }
  return result;
}

// Python's floor division and modulo of ints (the result of % takes the divisor's sign).
Value floor_div_mod(const std::string& op, int64_t x, int64_t y) {
  if (y == -1) return op == "%" ? Value(int64_t{0}) : Value(sub_int(0, x, op));  // x / -1 traps at INT64_MIN
  int64_t q = x / y, r = x % y;
  if (r != 0 && ((r < 0) != (y < 0))) {
    --q;
    r += y;
  }
  return op == "//" ? Value(q) : Value(r);
}

// True when `v` holds a namespace anywhere inside it.
bool holds_namespace(const Value& v) {
  if (v.kind() == Value::Kind::Namespace) return true;
  if (v.is_list())
    return std::any_of(v.as_list().begin(), v.as_list().end(), [](const Value& item) { return holds_namespace(item); });
  if (v.kind() == Value::Kind::Dict)
    return std::any_of(v.as_dict().items.begin(), v.as_dict().items.end(),
                       [](const auto& item) { return holds_namespace(item.second); });
  return false;
}

class Interpreter {
 public:
  Interpreter(const std::string& name, const Dict& globals, const RenderLimits& limits)
      : name_(name), globals_(globals), limits_(limits) {
    scopes_.emplace_back();
  }

  std::string run(const Body& body) {
    CreationBudget budget(limits_.max_created_bytes);
    std::string out;
    exec(body, out);
    return out;
  }

 private:
  enum class Flow { Normal, Break, Continue };

  [[noreturn]] void fail(int line, int column, const std::string& what) const {
    throw Error(fmt::format("chat template {}:{}:{}: {}", name_, line, column, what));
  }

  void step(const Node& n) {
    if (++steps_ > limits_.max_steps)
      fail(n.line, n.column, fmt::format("rendering stopped after {} steps", limits_.max_steps));
  }

  void emit(std::string& out, const std::string& text, const Node& n) {
    out += text;
    if (out.size() > limits_.max_output_bytes)
      fail(n.line, n.column, fmt::format("output exceeds {} bytes", limits_.max_output_bytes));
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    if (const Value* v = globals_.find(name)) return *v;
    Value builtin = global_function(name);
    if (!builtin.is_undefined()) return builtin;
    return Value::undefined("'" + name + "' is undefined");
  }

  void assign(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = v;
      return;
    }
    List items = iterate(v);
    if (items.size() != targets.size())
      throw TemplateFault(fmt::format("cannot unpack {} values into {} names", items.size(), targets.size()));
    for (size_t i = 0; i < targets.size(); ++i) scopes_.back()[targets[i]] = items[i];
  }

  Flow exec(const Body& body, std::string& out) {
    for (const Node& n : body) {
      Flow flow = exec(n, out);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

  Flow exec(const Node& n, std::string& out) {
    step(n);
    try {
      return exec_node(n, out);
    } catch (const TemplateFault& f) {
      fail(n.line, n.column, f.what());
    }
  }

  Flow exec_node(const Node& n, std::string& out) {
    switch (n.kind) {
      case Node::Kind::Text: emit(out, n.text, n); return Flow::Normal;
      case Node::Kind::Print: emit(out, eval(*n.expr).str(), n); return Flow::Normal;
      case Node::Kind::If:
        for (size_t i = 0; i < n.bodies.size(); ++i)
          if (i >= n.conds.size() || eval(*n.conds[i]).truthy()) return exec(n.bodies[i], out);
        return Flow::Normal;
      case Node::Kind::For: return exec_for(n, out);
      case Node::Kind::Set: {
        Value v = eval(*n.expr);
        if (n.attr.empty()) {
          assign(n.targets, v);
        } else {
          Value target = lookup(n.targets[0]);
          if (target.kind() != Value::Kind::Namespace) throw TemplateFault("cannot assign attribute on non-namespace object");
          // A namespace held inside a namespace could come to hold itself: a cycle that never prints or frees.
          if (holds_namespace(v)) throw TemplateFault("a namespace cannot be stored in a namespace");
          target.as_dict().set(n.attr, v);
        }
        return Flow::Normal;
      }
      case Node::Kind::SetBlock: {
        std::string captured;
        exec(n.bodies[0], captured);
        assign(n.targets, Value(captured));
        return Flow::Normal;
      }
      case Node::Kind::Macro: define_macro(n); return Flow::Normal;
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
      case Node::Kind::Scope: return exec(n.bodies[0], out);
    }
    return Flow::Normal;
  }

  Flow exec_for(const Node& n, std::string& out) {
    List items = iterate(eval(*n.expr));
    if (n.cond) {  // "for x in xs if cond": filtered before loop.length is known
      List kept;
      for (const Value& item : items) {
        scopes_.emplace_back();
        assign(n.targets, item);
        bool keep = eval(*n.cond).truthy();
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (n.bodies.size() > 1) {
        scopes_.emplace_back();
        Flow flow = exec(n.bodies[1], out);
        scopes_.pop_back();
        (void)flow;
      }
      return Flow::Normal;
    }
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      step(n);
      Dict loop;
      loop.items = {{"index", Value(i + 1)},
                    {"index0", Value(i)},
                    {"revindex", Value(length - i)},
                    {"revindex0", Value(length - i - 1)},
                    {"first", Value(i == 0)},
                    {"last", Value(i == length - 1)},
                    {"length", Value(length)},
                    {"depth", Value(int64_t{1})},
                    {"depth0", Value(int64_t{0})},
                    {"previtem", i > 0 ? items[i - 1] : Value::undefined("'loop.previtem' is undefined on the first item")},
                    {"nextitem", i + 1 < length ? items[i + 1] : Value::undefined("'loop.nextitem' is undefined on the last item")}};
      loop.items.emplace_back("cycle", Value::function("cycle", [i](CallArgs& a) {
                                if (a.positional.empty()) throw TemplateFault("no items for cycling given");
                                return a.positional[static_cast<size_t>(i) % a.positional.size()];
                              }));
      scopes_.emplace_back();  // each iteration starts from a fresh scope, as in jinja2
      scopes_.back()["loop"] = Value(std::move(loop));
      Flow flow;
      try {
        assign(n.targets, items[i]);
        flow = exec(n.bodies[0], out);
      } catch (...) {
        scopes_.pop_back();
        throw;
      }
      scopes_.pop_back();
      if (flow == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void define_macro(const Node& n) {
    const Node* node = &n;
    scopes_.back()[n.targets[0]] = Value::function(n.targets[0], [this, node](CallArgs& a) {
      if (++depth_ > limits_.max_call_depth)
        fail(node->line, node->column, fmt::format("macro calls nested deeper than {}", limits_.max_call_depth));
      Frame frame;
      if (a.positional.size() > node->params.size())
        throw TemplateFault(fmt::format("macro '{}' takes {} arguments, {} given", node->targets[0],
                                        node->params.size(), a.positional.size()));
      for (size_t i = 0; i < node->params.size(); ++i) {
        const auto& [param, fallback] = node->params[i];
        Value v = a.get(i, param);
        if (v.is_undefined() && fallback) v = eval(*fallback);
        frame[param] = v.is_undefined() ? Value::undefined("'" + param + "' is undefined") : v;
      }
      std::vector<Frame> saved = std::move(scopes_);
      scopes_ = {saved.front(), std::move(frame)};
      std::string out;
      try {
        exec(node->bodies[0], out);
      } catch (...) {
        scopes_ = std::move(saved);
        --depth_;
        throw;
      }
      scopes_ = std::move(saved);
      --depth_;
      return Value(out);
    });
  }

  Value eval(const Expr& e) {
    try {
      return eval_expr(e);
    } catch (const TemplateFault& f) {
      fail(e.line, e.column, f.what());
    }
  }

  CallArgs eval_args(const Expr& e, size_t first_arg) {
    CallArgs args;
    for (size_t i = first_arg; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
    return args;
  }

  static void require_defined(const Value& v) {
    if (v.is_undefined())
      throw TemplateFault(v.name().empty() ? std::string("value is undefined") : v.name());
  }

  Value eval_expr(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: return lookup(e.name);
      case Expr::Kind::List: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return e.tuple ? Value::tuple(std::move(items)) : Value(std::move(items));
      }
      case Expr::Kind::Dict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value key = eval(*e.args[i]);
          if (!key.is_string()) throw TemplateFault("dictionary keys must be strings");
          d.set(key.as_string(), eval(*e.args[i + 1]));
        }
        return Value(std::move(d));
      }
      case Expr::Kind::Attr: return get_attribute(eval(*e.args[0]), e.name);
      case Expr::Kind::Item: return get_item(eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::Slice: {
        Value obj = eval(*e.args[0]);
        auto bound = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
        return get_slice(obj, bound(1), bound(2), bound(3));
      }
      case Expr::Kind::Call: {
        Value callee = eval(*e.args[0]);
        CallArgs args = eval_args(e, 1);
        require_defined(callee);
        if (!callee.is_callable()) throw TemplateFault(fmt::format("'{}' object is not callable", callee.type_name()));
        return callee.as_function()(args);
      }
      case Expr::Kind::Filter: {
        CallArgs args = eval_args(e, 0);
        return apply_filter(e.name, args);
      }
      case Expr::Kind::Test: {
        CallArgs args = eval_args(e, 0);
        return Value(apply_test(e.name, args) != e.negated);
      }
      case Expr::Kind::Not: return Value(!eval(*e.args[0]).truthy());
      case Expr::Kind::Neg:
      case Expr::Kind::Pos: {
        Value v = eval(*e.args[0]);
        require_defined(v);
        if (!v.is_number()) throw TemplateFault(fmt::format("bad operand type for unary -: '{}'", v.type_name()));
        if (e.kind == Expr::Kind::Pos) return v.kind() == Value::Kind::Float ? v : Value(v.as_int());
        if (v.kind() == Value::Kind::Float) return Value(-v.as_double());
        return Value(sub_int(0, v.as_int(), "-"));
      }
      case Expr::Kind::Binary: return binary(e.name, eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::Compare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          if (!compare(e.ops[i], left, right)) return Value(false);
          left = right;
        }
        return Value(true);
      }
      case Expr::Kind::And: {
        Value left = eval(*e.args[0]);
        return left.truthy() ? eval(*e.args[1]) : left;
      }
      case Expr::Kind::Or: {
        Value left = eval(*e.args[0]);
        return left.truthy() ? left : eval(*e.args[1]);
      }
      case Expr::Kind::Cond:
        if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("an if-expression without else gave an undefined value");
    }
    return Value();
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(b, a);
    if (op == "not in") return !contains(b, a);
    require_defined(a);
    require_defined(b);
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return !less(b, a);
    if (op == ">=") return !less(a, b);
    throw TemplateFault("unknown comparison " + op);
  }

  static Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string left = a.str(), right = b.str();
      check_string_size(left.size() + right.size());
      return Value(left + right);
    }
    require_defined(a);
    require_defined(b);
    auto unsupported = [&]() -> Value {
      throw TemplateFault(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(),
                                      b.type_name()));
    };
    bool floating = a.kind() == Value::Kind::Float || b.kind() == Value::Kind::Float;
    if (op == "+") {
      if (a.is_number() && b.is_number()) {
        if (floating) return Value(a.as_double() + b.as_double());
        return Value(add_int(a.as_int(), b.as_int(), op));
      }
      if (a.is_string() && b.is_string()) {
        check_string_size(a.as_string().size() + b.as_string().size());
        return Value(a.as_string() + b.as_string());
      }
      if (a.is_list() && b.is_list()) {
        if (a.as_list().size() + b.as_list().size() > kMaxItems)
          throw TemplateFault(fmt::format("a list of more than {} items", kMaxItems));
        List out = a.as_list();
        out.insert(out.end(), b.as_list().begin(), b.as_list().end());
        return Value(std::move(out));
      }
      return unsupported();
    }
    if (op == "*") {
      if (a.is_number() && b.is_number()) {
        if (floating) return Value(a.as_double() * b.as_double());
        return Value(mul_int(a.as_int(), b.as_int(), op));
      }
      const Value* seq = a.is_number() ? &b : &a;
      const Value* count = a.is_number() ? &a : &b;
      if (count->kind() == Value::Kind::Int || count->kind() == Value::Kind::Bool) {
        int64_t n = std::max<int64_t>(count->as_int(), 0);
        if (seq->is_string()) {
          if (static_cast<double>(n) * seq->as_string().size() > kMaxStringBytes)
            throw TemplateFault("string repetition too large");
          std::string out;
          for (int64_t i = 0; i < n; ++i) out += seq->as_string();
          return Value(out);
        }
        if (seq->is_list()) {
          if (static_cast<double>(n) * seq->as_list().size() > kMaxItems) throw TemplateFault("list repetition too large");
          List out;
          for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq->as_list().begin(), seq->as_list().end());
          return Value(std::move(out));
        }
      }
      return unsupported();
    }
    if (!a.is_number() || !b.is_number()) return unsupported();
    if (op == "-") {
      if (floating) return Value(a.as_double() - b.as_double());
      return Value(sub_int(a.as_int(), b.as_int(), op));
    }
    if (op == "/") {
      if (b.as_double() == 0.0) throw TemplateFault("division by zero");
      return Value(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
      if (b.as_double() == 0.0) throw TemplateFault(op == "%" ? "modulo by zero" : "integer division by zero");
      if (floating) {
        double q = std::floor(a.as_double() / b.as_double());
        return op == "//" ? Value(q) : Value(a.as_double() - q * b.as_double());
      }
      return floor_div_mod(op, a.as_int(), b.as_int());
    }
    if (op == "**") {
      if (!floating && b.as_int() >= 0) return Value(int_power(a.as_int(), b.as_int()));
      return Value(std::pow(a.as_double(), b.as_double()));
    }
    return unsupported();
  }

  const std::string& name_;
  const Dict& globals_;
  const RenderLimits& limits_;
  std::vector<Frame> scopes_;
  size_t steps_ = 0;
  int depth_ = 0;
};

}  // namespace

Template::Template(const std::string& source, std::string name) : name_(std::move(name)) {
  body_ = std::make_shared<const Body>(parse(tokenize(source, name_), name_));
}

std::string Template::render(const Dict& variables, const RenderLimits& limits) const {
  return Interpreter(name_, variables, limits).run(*body_);
}

}  // namespace qwenvl::model::jinja
