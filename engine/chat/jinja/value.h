// The values a chat template computes with, with Python's semantics (the reference renders templates
// with jinja2 on Python objects): truthiness, str(), ==, ordering, json.dumps as transformers' tojson.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace qwenvl::model::jinja {

// A fault found while evaluating; the interpreter adds the template file and position.
struct TemplateFault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bounds on any one value a template builds, whatever it does: printing, comparing and freeing a
// value recurse once per level of nesting, and no single string or list may take the machine's memory.
inline constexpr size_t kMaxStringBytes = size_t{64} << 20;
inline constexpr size_t kMaxItems = 1'000'000;  // list items or dict entries
inline constexpr int kMaxValueDepth = 100;
// Throws TemplateFault when a string of `bytes` would exceed kMaxStringBytes.
void check_string_size(size_t bytes);

// All that one render may create (string bytes, list and dict entries), charged as values are made
// on this thread while it lives; values made outside a render (the messages) are not counted.
class CreationBudget {
 public:
  explicit CreationBudget(size_t max_bytes);
  ~CreationBudget();
  CreationBudget(const CreationBudget&) = delete;
  CreationBudget& operator=(const CreationBudget&) = delete;
  // Throws TemplateFault once the render on this thread has created more than its budget.
  static void charge(size_t bytes);

 private:
  size_t left_;
  CreationBudget* outer_;
};

class Value;
using List = std::vector<Value>;

// A Python dict: insertion-ordered, string keys (the only keys chat templates and their inputs use).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
};

struct CallArgs;
using Function = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

  Value() = default;  // undefined
  static Value undefined(std::string why = {});  // `why` becomes the error message of its use
  static Value none();
  Value(bool b);
  Value(int v) : Value(static_cast<int64_t>(v)) {}
  Value(int64_t i);
  Value(double f);
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  Value(List list);
  Value(Dict dict);
  static Value tuple(List items);  // a list that prints as Python prints a tuple
  static Value namespace_(Dict attributes);
  static Value function(std::string name, Function fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_tuple() const { return kind_ == Kind::List && tuple_; }
  bool is_mapping() const { return kind_ == Kind::Dict || kind_ == Kind::Namespace; }
  bool is_callable() const { return kind_ == Kind::Function; }

  bool as_bool() const { return b_; }
  int64_t as_int() const;  // bool and int; a float truncated, a fault where no int64 holds it
  double as_double() const;
  // Access to the payload; a value of another kind is a fault, never undefined behaviour.
  const std::string& as_string() const { return *checked(s_, "a string"); }
  const List& as_list() const { return *checked(list_, "a list"); }
  List& as_list() { return *checked(list_, "a list"); }
  const Dict& as_dict() const { return *checked(dict_, "a mapping"); }
  Dict& as_dict() { return *checked(dict_, "a mapping"); }  // shared: a namespace is mutated through any copy
  const Function& as_function() const { return *fn_; }
  const std::string& name() const { return name_; }  // why an undefined is undefined; a function's name

  bool truthy() const;
  std::string str() const;   // Python str(); undefined prints as ""
  std::string repr() const;  // Python repr(), as str() of a list shows its items
  std::string type_name() const;
  // Levels of nesting: 0 for a scalar, 1 + the deepest item for a list, dict or namespace.
  int depth() const;

 private:
  template <typename P>
  const P& checked(const P& payload, const char* what) const {
    if (!payload) throw TemplateFault("expected " + std::string(what) + ", got " + type_name());
    return payload;
  }

  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  bool tuple_ = false;
  int64_t i_ = 0;
  double f_ = 0.0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Function> fn_;
  std::string name_;
  int depth_ = 0;  // of a list or dict when made (a namespace's is computed, as it changes)
};

// Positional and keyword arguments of a call (filters get their subject as the first positional).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at `index` or named `name`; `fallback` when neither was given.
  Value get(size_t index, const std::string& name, Value fallback = Value()) const;
};

bool equals(const Value& a, const Value& b);
// Python's <; throws qwenvl::Error for types Python cannot order.
bool less(const Value& a, const Value& b);
// Python's json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=...) (transformers' tojson).
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false);
std::string python_float_repr(double f);

// Objects keep their key order (tojson of a tool schema prints keys as given).
Value from_json(const nlohmann::ordered_json& j);

}  // namespace qwenvl::model::jinja
