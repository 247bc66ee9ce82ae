#include "chat/jinja/builtins.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

#include <fmt/format.h>
#include <utf8proc.h>

namespace qwenvl::model::jinja {
namespace {

// Appends, refusing a string longer than kMaxStringBytes before it is built.
void append_bounded(std::string& out, const std::string& piece) {
  check_string_size(out.size() + piece.size());
  out += piece;
}

// Adds an item, refusing a list longer than kMaxItems before it is built.
template <typename T>
void push_bounded(List& out, T&& item) {
  if (out.size() >= kMaxItems) throw TemplateFault(fmt::format("a list of more than {} items", kMaxItems));
  out.emplace_back(std::forward<T>(item));
}

// --- UTF-8: Python strings index, slice and case-map by code point ---

std::vector<int32_t> code_points(const std::string& s) {
  std::vector<int32_t> out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // invalid byte: keep it as a lone unit so nothing is lost
      cp = *p;
      n = 1;
    }
    out.push_back(cp);
    p += n;
    left -= n;
  }
  return out;
}

std::string encode(const std::vector<int32_t>& cps, size_t begin = 0, size_t end = std::string::npos) {
  std::string out;
  end = std::min(end, cps.size());
  for (size_t i = begin; i < end; ++i) {
    utf8proc_uint8_t buf[4];
    utf8proc_ssize_t n = utf8proc_encode_char(cps[i], buf);
    out.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  }
  return out;
}

// Python's str.isspace() set.
bool is_py_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::vector<int32_t> cps = code_points(s);
  std::vector<int32_t> set;
  bool by_space = chars.is_undefined() || chars.is_none();
  if (!by_space) {
    if (!chars.is_string()) throw TemplateFault("strip arg must be None or str");
    set = code_points(chars.as_string());
  }
  auto strip_it = [&](int32_t c) {
    return by_space ? is_py_space(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return encode(cps, b, e);
}

std::string map_case(const std::string& s, bool upper) {
  std::vector<int32_t> cps = code_points(s);
  for (auto& c : cps) c = upper ? utf8proc_toupper(c) : utf8proc_tolower(c);
  return encode(cps);
}

std::string capitalize(const std::string& s) {
  std::vector<int32_t> cps = code_points(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? utf8proc_totitle(cps[i]) : utf8proc_tolower(cps[i]);
  return encode(cps);
}

// jinja2's title filter: capitalise the first letter of each word (words split at spaces, -, (, {, [).
std::string title(const std::string& s) {
  std::vector<int32_t> cps = code_points(s);
  bool word_start = true;
  for (auto& c : cps) {
    bool sep = is_py_space(c) || c == '-' || c == '(' || c == '{' || c == '[';
    if (sep) {
      word_start = true;
      continue;
    }
    c = word_start ? utf8proc_totitle(c) : utf8proc_tolower(c);
    word_start = false;
  }
  return encode(cps);
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {  // Python inserts `to` between every character
    std::vector<int32_t> cps = code_points(s);
    std::string out;
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        append_bounded(out, to);
        ++done;
      }
      if (i < cps.size()) append_bounded(out, encode(cps, i, i + 1));
    }
    return out;
  }
  std::string out;
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    append_bounded(out, to);
    pos = hit + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

List split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_undefined() || sep.is_none()) {  // runs of whitespace, no empty strings
    std::vector<int32_t> cps = code_points(s);
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && is_py_space(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        size_t e = cps.size();
        while (e > i && is_py_space(cps[e - 1])) --e;
        push_bounded(out, encode(cps, i, e));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !is_py_space(cps[j])) ++j;
      push_bounded(out, encode(cps, i, j));
      i = j;
    }
    return out;
  }
  if (!sep.is_string()) throw TemplateFault("must be str or None, not " + sep.type_name());
  const std::string& d = sep.as_string();
  if (d.empty()) throw TemplateFault("empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t hit = s.find(d, pos);
    if (hit == std::string::npos) break;
    push_bounded(out, s.substr(pos, hit - pos));
    pos = hit + d.size();
  }
  push_bounded(out, s.substr(pos));
  return out;
}

bool starts_or_ends(const std::string& s, const Value& affix, bool start) {
  auto check = [&](const Value& a) {
    if (!a.is_string()) throw TemplateFault("startswith/endswith first arg must be str or a tuple of str");
    const std::string& x = a.as_string();
    if (x.size() > s.size()) return false;
    return start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_list()) {
    for (const Value& a : affix.as_list())
      if (check(a)) return true;
    return false;
  }
  return check(affix);
}

[[noreturn]] void undefined_fault(const Value& v) {
  throw TemplateFault(v.name().empty() ? std::string("value is undefined") : v.name());
}

std::string as_text(const Value& v) { return v.str(); }

int64_t to_int_arg(const Value& v, const char* what) {
  if (v.kind() != Value::Kind::Int && v.kind() != Value::Kind::Bool)
    throw TemplateFault(fmt::format("{} must be an integer, got {}", what, v.type_name()));
  return v.as_int();
}

Value bound(const std::string& name, Function fn) { return Value::function(name, std::move(fn)); }

Value string_method(const std::string& s, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bound(name, [s, name](CallArgs& a) {
      return Value(py_strip(s, a.get(0, "chars"), name != "rstrip", name != "lstrip"));
    });
  if (name == "upper" || name == "lower")
    return bound(name, [s, name](CallArgs&) { return Value(map_case(s, name == "upper")); });
  if (name == "title") return bound(name, [s](CallArgs&) { return Value(title(s)); });
  if (name == "capitalize") return bound(name, [s](CallArgs&) { return Value(capitalize(s)); });
  if (name == "split")
    return bound(name, [s](CallArgs& a) {
      Value max = a.get(1, "maxsplit", Value(int64_t{-1}));
      return Value(split(s, a.get(0, "sep"), to_int_arg(max, "maxsplit")));
    });
  if (name == "splitlines")
    return bound(name, [s](CallArgs&) {
      List out;
      size_t pos = 0;
      while (pos < s.size()) {
        size_t nl = s.find_first_of("\n\r", pos);
        if (nl == std::string::npos) {
          push_bounded(out, s.substr(pos));
          break;
        }
        push_bounded(out, s.substr(pos, nl - pos));
        pos = nl + ((s[nl] == '\r' && nl + 1 < s.size() && s[nl + 1] == '\n') ? 2 : 1);
      }
      return Value(std::move(out));
    });
  if (name == "startswith" || name == "endswith")
    return bound(name, [s, name](CallArgs& a) { return Value(starts_or_ends(s, a.get(0, "prefix"), name == "startswith")); });
  if (name == "replace")
    return bound(name, [s](CallArgs& a) {
      Value from = a.get(0, "old"), to = a.get(1, "new");
      if (!from.is_string() || !to.is_string()) throw TemplateFault("replace() arguments must be str");
      return Value(replace_all(s, from.as_string(), to.as_string(),
                               to_int_arg(a.get(2, "count", Value(int64_t{-1})), "count")));
    });
  if (name == "find" || name == "rfind" || name == "count")
    return bound(name, [s, name](CallArgs& a) {
      Value sub = a.get(0, "sub");
      if (!sub.is_string()) throw TemplateFault(name + "() argument must be str");
      const std::string& x = sub.as_string();
      if (name == "count") {
        if (x.empty()) return Value(static_cast<int64_t>(code_points(s).size() + 1));
        int64_t n = 0;
        for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
        return Value(n);
      }
      size_t p = name == "find" ? s.find(x) : s.rfind(x);
      if (p == std::string::npos) return Value(int64_t{-1});
      return Value(static_cast<int64_t>(code_points(s.substr(0, p)).size()));
    });
  if (name == "join")
    return bound(name, [s](CallArgs& a) {
      std::string out;
      List items = iterate(a.get(0, "iterable"));
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string())
          throw TemplateFault(fmt::format("sequence item {}: expected str instance, {} found", i, items[i].type_name()));
        if (i) append_bounded(out, s);
        append_bounded(out, items[i].as_string());
      }
      return Value(out);
    });
  if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum" || name == "isupper" ||
      name == "islower")
    return bound(name, [s, name](CallArgs&) {
      std::vector<int32_t> cps = code_points(s);
      if (cps.empty()) return Value(false);
      bool cased = false;
      for (int32_t c : cps) {
        auto cat = utf8proc_category(c);
        bool letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        bool digit = cat == UTF8PROC_CATEGORY_ND;
        if (name == "isdigit" && !digit) return Value(false);
        if (name == "isspace" && !is_py_space(c)) return Value(false);
        if (name == "isalpha" && !letter) return Value(false);
        if (name == "isalnum" && !letter && !digit) return Value(false);
        if (name == "isupper" || name == "islower") {
          if (utf8proc_toupper(c) != c || utf8proc_tolower(c) != c) {
            cased = true;
            if ((name == "isupper") != (utf8proc_toupper(c) == c)) return Value(false);
          }
        }
      }
      return Value(name == "isupper" || name == "islower" ? cased : true);
    });
  return Value::undefined(fmt::format("'str object' has no attribute '{}'", name));
}

Value dict_method(const Value& d, const std::string& name) {
  if (name == "items")
    return bound(name, [d](CallArgs&) {
      List out;
      for (const auto& [k, v] : d.as_dict().items) out.push_back(Value::tuple({Value(k), v}));
      return Value(std::move(out));
    });
  if (name == "keys")
    return bound(name, [d](CallArgs&) {
      List out;
      for (const auto& item : d.as_dict().items) out.emplace_back(item.first);
      return Value(std::move(out));
    });
  if (name == "values")
    return bound(name, [d](CallArgs&) {
      List out;
      for (const auto& item : d.as_dict().items) out.push_back(item.second);
      return Value(std::move(out));
    });
  if (name == "get")
    return bound(name, [d](CallArgs& a) {
      Value key = a.get(0, "key");
      if (key.is_string())
        if (const Value* v = d.as_dict().find(key.as_string())) return *v;
      return a.get(1, "default", Value::none());
    });
  return Value();
}

int64_t normalize_index(int64_t i, size_t n) { return i < 0 ? i + static_cast<int64_t>(n) : i; }

// Python's slice.indices.
std::vector<size_t> slice_indices(size_t n, const Value& start, const Value& stop, const Value& step) {
  auto given = [](const Value& v) { return !(v.is_undefined() || v.is_none()); };
  int64_t st = given(step) ? to_int_arg(step, "slice step") : 1;
  if (st == 0) throw TemplateFault("slice step cannot be zero");
  int64_t len = static_cast<int64_t>(n);
  auto clamp = [&](const Value& v, int64_t fallback) {
    if (!given(v)) return fallback;
    int64_t i = to_int_arg(v, "slice index");
    if (i < 0) i += len;
    if (st > 0) return std::clamp<int64_t>(i, 0, len);
    return std::clamp<int64_t>(i, -1, len - 1);
  };
  int64_t b = clamp(start, st > 0 ? 0 : len - 1);
  int64_t e = clamp(stop, st > 0 ? len : -1);
  std::vector<size_t> out;
  for (int64_t i = b; st > 0 ? i < e : i > e;) {
    out.push_back(static_cast<size_t>(i));
    if (__builtin_add_overflow(i, st, &i)) break;  // a step past the int64 range leaves the slice
  }
  return out;
}

Value attribute_of_item(const Value& item, const Value& attribute) {
  if (attribute.is_string()) {
    // jinja2 splits dotted attribute paths ("function.name")
    Value v = item;
    size_t pos = 0;
    const std::string& path = attribute.as_string();
    while (true) {
      size_t dot = path.find('.', pos);
      std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
      int64_t index = 0;
      const auto parsed = std::from_chars(part.data(), part.data() + part.size(), index);
      const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) &&
                           parsed.ec == std::errc() && parsed.ptr == part.data() + part.size();
      v = numeric ? get_item(v, Value(index)) : get_item(v, Value(part));
      if (dot == std::string::npos) return v;
      pos = dot + 1;
    }
  }
  return get_item(item, attribute);
}

// select / reject / selectattr / rejectattr: the test to run on each item (truthiness by default).
List select_items(CallArgs& a, bool by_attribute, bool keep_when) {
  List items = iterate(a.positional.at(0));
  size_t next = 1;
  Value attribute;
  if (by_attribute) {
    if (a.positional.size() < 2) throw TemplateFault("missing attribute argument");
    attribute = a.positional[next++];
  }
  std::string test;
  if (a.positional.size() > next) test = a.positional[next++].str();
  List out;
  for (const Value& item : items) {
    Value subject = by_attribute ? attribute_of_item(item, attribute) : item;
    bool pass;
    if (test.empty()) {
      pass = subject.truthy();
    } else {
      CallArgs t;
      t.positional.push_back(subject);
      for (size_t i = next; i < a.positional.size(); ++i) t.positional.push_back(a.positional[i]);
      pass = apply_test(test, t);
    }
    if (pass == keep_when) out.push_back(item);
  }
  return out;
}

Value sum_or_extreme(CallArgs& a, const std::string& which) {
  List items = iterate(a.positional.at(0));
  Value attribute = a.get(which == "sum" ? 1 : 2, "attribute");
  if (!attribute.is_undefined() && !attribute.is_none())
    for (auto& item : items) item = attribute_of_item(item, attribute);
  if (which == "sum") {
    Value total = a.get(2, "start", Value(int64_t{0}));
    for (const auto& item : items) {
      if (!item.is_number() || !total.is_number()) throw TemplateFault("sum filter needs numbers");
      if (total.kind() == Value::Kind::Float || item.kind() == Value::Kind::Float)
        total = Value(total.as_double() + item.as_double());
      else if (int64_t sum = 0; __builtin_add_overflow(total.as_int(), item.as_int(), &sum))
        throw TemplateFault("integer overflow in sum");
      else
        total = Value(sum);
    }
    return total;
  }
  if (items.empty()) return Value::undefined("no items for " + which + "(): undefined");
  Value best = items[0];
  for (const auto& item : items)
    if (which == "min" ? less(item, best) : less(best, item)) best = item;
  return best;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return v.as_list();
    case Value::Kind::Dict:
    case Value::Kind::Namespace: {
      List keys;
      for (const auto& item : v.as_dict().items) keys.emplace_back(item.first);
      return keys;
    }
    case Value::Kind::String: {
      List chars;
      std::vector<int32_t> cps = code_points(v.as_string());
      for (size_t i = 0; i < cps.size(); ++i) push_bounded(chars, encode(cps, i, i + 1));
      return chars;
    }
    default: throw TemplateFault(fmt::format("'{}' object is not iterable", v.type_name()));
  }
}

Value get_attribute(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::Undefined: undefined_fault(obj);
    case Value::Kind::String: return string_method(obj.as_string(), name);
    case Value::Kind::Dict: {
      Value method = dict_method(obj, name);
      if (!method.is_undefined()) return method;
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return Value::undefined(fmt::format("'dict object' has no attribute '{}'", name));
    }
    case Value::Kind::Namespace:
      if (const Value* v = obj.as_dict().find(name)) return *v;
      return Value::undefined(fmt::format("'Namespace' has no attribute '{}'", name));
    default:
      return Value::undefined(fmt::format("'{}' object has no attribute '{}'", obj.type_name(), name));
  }
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::Undefined: undefined_fault(obj);
    case Value::Kind::Dict:
    case Value::Kind::Namespace:
      if (key.is_string()) {
        if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
        if (obj.kind() == Value::Kind::Dict) {
          Value method = dict_method(obj, key.as_string());
          if (!method.is_undefined()) return method;
        }
        return Value::undefined(fmt::format("'dict object' has no attribute '{}'", key.as_string()));
      }
      return Value::undefined(fmt::format("'dict object' has no element {}", key.repr()));
    case Value::Kind::List:
      if (key.kind() == Value::Kind::Int || key.kind() == Value::Kind::Bool) {
        const List& list = obj.as_list();
        int64_t i = normalize_index(key.as_int(), list.size());
        if (i >= 0 && i < static_cast<int64_t>(list.size())) return list[static_cast<size_t>(i)];
        return Value::undefined(fmt::format("'list object' has no element {}", key.as_int()));
      }
      break;
    case Value::Kind::String:
      if (key.kind() == Value::Kind::Int || key.kind() == Value::Kind::Bool) {
        std::vector<int32_t> cps = code_points(obj.as_string());
        int64_t i = normalize_index(key.as_int(), cps.size());
        if (i >= 0 && i < static_cast<int64_t>(cps.size()))
          return Value(encode(cps, static_cast<size_t>(i), static_cast<size_t>(i) + 1));
        return Value::undefined(fmt::format("'str object' has no element {}", key.as_int()));
      }
      break;
    default: break;
  }
  if (key.is_string()) return get_attribute(obj, key.as_string());
  return Value::undefined(fmt::format("'{}' object has no element {}", obj.type_name(), key.repr()));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) undefined_fault(obj);
  if (obj.is_list()) {
    const List& list = obj.as_list();
    List out;
    for (size_t i : slice_indices(list.size(), start, stop, step)) out.push_back(list[i]);
    return Value(std::move(out));
  }
  if (obj.is_string()) {
    std::vector<int32_t> cps = code_points(obj.as_string());
    std::vector<int32_t> out;
    for (size_t i : slice_indices(cps.size(), start, stop, step)) out.push_back(cps[i]);
    return Value(encode(out));
  }
  throw TemplateFault(fmt::format("'{}' object is not subscriptable", obj.type_name()));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::Undefined: return false;
    case Value::Kind::String:
      if (!item.is_string())
        throw TemplateFault(fmt::format("'in <string>' requires string as left operand, not {}", item.type_name()));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::List:
      for (const Value& v : container.as_list())
        if (equals(v, item)) return true;
      return false;
    case Value::Kind::Dict:
    case Value::Kind::Namespace: return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default:
      throw TemplateFault(fmt::format("argument of type '{}' is not iterable", container.type_name()));
  }
}

Value apply_filter(const std::string& name, CallArgs& a) {
  const Value& v = a.positional.at(0);
  if (name == "default" || name == "d") {
    bool boolean = a.get(2, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return a.get(1, "default_value", Value(std::string()));
    return v;
  }
  if (name == "safe") return v;
  if (name == "string") return Value(as_text(v));
  if (name == "length" || name == "count") {
    if (v.is_string()) return Value(static_cast<int64_t>(code_points(v.as_string()).size()));
    if (v.is_list() || v.is_mapping() || v.is_undefined()) return Value(static_cast<int64_t>(iterate(v).size()));
    throw TemplateFault(fmt::format("object of type '{}' has no len()", v.type_name()));
  }
  if (name == "trim") return Value(py_strip(as_text(v), a.get(1, "chars"), true, true));
  if (name == "upper" || name == "lower") return Value(map_case(as_text(v), name == "upper"));
  if (name == "capitalize") return Value(capitalize(as_text(v)));
  if (name == "title") return Value(title(as_text(v)));
  if (name == "e" || name == "escape") return Value(html_escape(as_text(v)));
  if (name == "replace") {
    Value from = a.get(1, "old"), to = a.get(2, "new");
    return Value(replace_all(as_text(v), as_text(from), as_text(to),
                             to_int_arg(a.get(3, "count", Value(int64_t{-1})), "count")));
  }
  if (name == "tojson") {
    Value indent = a.get(1, "indent", Value::none());
    Value sort_keys = a.get(4, "sort_keys", Value(false));
    Value separators = a.get(3, "separators", Value::none());
    std::string out = to_json(v, indent.is_none() ? -1 : static_cast<int>(to_int_arg(indent, "indent")),
                              sort_keys.truthy());
    if (!separators.is_none()) {
      // Custom separators: re-render with them (rare; only the default pair is cheap to emit directly).
      if (!separators.is_list() || separators.as_list().size() != 2)
        throw TemplateFault("tojson separators must be a pair of strings");
      throw TemplateFault("tojson with custom separators is not supported");
    }
    return Value(out);
  }
  if (name == "join") {
    List items = iterate(v);
    Value attribute = a.get(2, "attribute");
    std::string sep = as_text(a.get(1, "d", Value(std::string())));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      Value item = attribute.is_undefined() || attribute.is_none() ? items[i] : attribute_of_item(items[i], attribute);
      if (i) append_bounded(out, sep);
      append_bounded(out, as_text(item));
    }
    return Value(out);
  }
  if (name == "first" || name == "last") {
    List items = iterate(v);
    if (items.empty()) return Value::undefined("empty sequence has no " + name + " item");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value(iterate(v));
  if (name == "items") {
    if (v.is_undefined()) return Value(List{});
    if (!v.is_mapping()) throw TemplateFault("items filter needs a mapping");
    List out;
    for (const auto& [k, val] : v.as_dict().items) out.push_back(Value::tuple({Value(k), val}));
    return Value(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_mapping()) throw TemplateFault("dictsort needs a mapping");
    auto items = v.as_dict().items;
    bool by_value = a.get(2, "by", Value("key")).str() == "value";
    bool reverse = a.get(3, "reverse", Value(false)).truthy();
    std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
      return by_value ? less(x.second, y.second) : x.first < y.first;
    });
    if (reverse) std::reverse(items.begin(), items.end());
    List out;
    for (const auto& [k, val] : items) out.push_back(Value::tuple({Value(k), val}));
    return Value(std::move(out));
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<int32_t> cps = code_points(v.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value(encode(cps));
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "sort") {
    List items = iterate(v);
    bool reverse = a.get(1, "reverse", Value(false)).truthy();
    Value attribute = a.get(3, "attribute");
    auto key = [&](const Value& item) {
      return attribute.is_undefined() || attribute.is_none() ? item : attribute_of_item(item, attribute);
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return reverse ? less(key(y), key(x)) : less(key(x), key(y));
    });
    return Value(std::move(items));
  }
  if (name == "unique") {
    List out;
    for (const Value& item : iterate(v))
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return equals(o, item); })) out.push_back(item);
    return Value(std::move(out));
  }
  if (name == "map") {
    List items = iterate(v);
    Value attribute = a.get(99, "attribute");
    List out;
    if (!attribute.is_undefined()) {
      Value fallback = a.get(99, "default");
      for (const auto& item : items) {
        Value x = attribute_of_item(item, attribute);
        out.push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
      }
      return Value(std::move(out));
    }
    if (a.positional.size() < 2) throw TemplateFault("map needs a filter name or attribute=");
    std::string filter = a.positional[1].str();
    for (const auto& item : items) {
      CallArgs f;
      f.positional.push_back(item);
      for (size_t i = 2; i < a.positional.size(); ++i) f.positional.push_back(a.positional[i]);
      out.push_back(apply_filter(filter, f));
    }
    return Value(std::move(out));
  }
  if (name == "select") return Value(select_items(a, false, true));
  if (name == "reject") return Value(select_items(a, false, false));
  if (name == "selectattr") return Value(select_items(a, true, true));
  if (name == "rejectattr") return Value(select_items(a, true, false));
  if (name == "attr") return get_attribute(v, as_text(a.get(1, "name")));
  if (name == "sum" || name == "min" || name == "max") return sum_or_extreme(a, name);
  if (name == "abs") {
    if (v.kind() == Value::Kind::Float) return Value(std::fabs(v.as_double()));
    if (v.is_number()) {
      if (v.as_int() == INT64_MIN) throw TemplateFault("integer overflow in abs");
      return Value(static_cast<int64_t>(std::llabs(v.as_int())));
    }
    throw TemplateFault("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "int") {
    Value fallback = a.get(1, "default", Value(int64_t{0}));
    if (v.is_number()) return Value(v.as_int());
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(v.as_string(), Value(), true, true);
        int64_t i = std::stoll(s, &used, 10);
        if (used == s.size()) return Value(i);
        double f = std::stod(s, &used);
        if (used == s.size()) return Value(Value(f).as_int());
      } catch (const std::exception&) {
      }
    }
    return fallback;
  }
  if (name == "float") {
    Value fallback = a.get(1, "default", Value(0.0));
    if (v.is_number()) return Value(v.as_double());
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = py_strip(v.as_string(), Value(), true, true);
        double f = std::stod(s, &used);
        if (used == s.size()) return Value(f);
      } catch (const std::exception&) {
      }
    }
    return fallback;
  }
  if (name == "round") {
    int64_t precision = to_int_arg(a.get(1, "precision", Value(int64_t{0})), "precision");
    std::string method = a.get(2, "method", Value("common")).str();
    double scale = std::pow(10.0, static_cast<double>(precision));
    double x = v.as_double() * scale;
    // "common" is Python's round(): ties go to the even neighbour
    double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
    return Value(r / scale);
  }
  if (name == "indent") {
    int64_t width = a.get(1, "width", Value(int64_t{4})).as_int();
    bool first = a.get(2, "first", Value(false)).truthy();
    bool blank = a.get(3, "blank", Value(false)).truthy();
    check_string_size(static_cast<size_t>(std::max<int64_t>(width, 0)));
    std::string pad(static_cast<size_t>(std::max<int64_t>(width, 0)), ' ');
    std::string s = as_text(v), out;
    size_t pos = 0;
    bool first_line = true;
    while (true) {
      size_t nl = s.find('\n', pos);
      std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      bool indent_it = first_line ? first : (blank || !py_strip(line, Value(), true, true).empty());
      append_bounded(out, (indent_it ? pad : "") + line);
      if (nl == std::string::npos) break;
      out += "\n";
      pos = nl + 1;
      first_line = false;
    }
    return Value(out);
  }
  if (name == "wordcount") return Value(static_cast<int64_t>(split(as_text(v), Value(), -1).size()));
  throw TemplateFault(fmt::format("no filter named '{}'", name));
}

bool apply_test(const std::string& name, CallArgs& a) {
  const Value& v = a.positional.at(0);
  auto arg = [&]() -> const Value& {
    if (a.positional.size() < 2) throw TemplateFault(fmt::format("test '{}' needs an argument", name));
    return a.positional[1];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();  // bool is a Number in Python
  if (name == "integer") return v.kind() == Value::Kind::Int;
  if (name == "float") return v.kind() == Value::Kind::Float;
  if (name == "boolean") return v.kind() == Value::Kind::Bool;
  if (name == "true") return v.kind() == Value::Kind::Bool && v.as_bool();
  if (name == "false") return v.kind() == Value::Kind::Bool && !v.as_bool();
  if (name == "mapping") return v.kind() == Value::Kind::Dict;
  if (name == "iterable")
    return v.is_list() || v.is_string() || v.is_mapping() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_string() || v.kind() == Value::Kind::Dict;
  if (name == "callable") return v.is_callable();
  if (name == "odd" || name == "even") {
    int64_t i = to_int_arg(v, "value");
    return (((i % 2) + 2) % 2 == 1) == (name == "odd");
  }
  if (name == "divisibleby") {
    int64_t d = to_int_arg(arg(), "divisor");
    if (d == 0) throw TemplateFault("integer modulo by zero");
    return d == -1 || to_int_arg(v, "value") % d == 0;  // INT64_MIN % -1 traps
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg());
  if (name == "ne" || name == "!=") return !equals(v, arg());
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, arg());
  if (name == "gt" || name == "greaterthan" || name == ">") return less(arg(), v);
  if (name == "le" || name == "<=") return !less(arg(), v);
  if (name == "ge" || name == ">=") return !less(v, arg());
  if (name == "in") return contains(arg(), v);
  if (name == "sameas") {
    const Value& o = arg();
    if (v.kind() != o.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.kind() == Value::Kind::Bool) return v.as_bool() == o.as_bool();
    return (v.is_list() || v.is_mapping()) && equals(v, o) && (v.is_list() ? &v.as_list() == &o.as_list()
                                                                             : &v.as_dict() == &o.as_dict());
  }
  if (name == "lower" || name == "upper") {
    std::string s = as_text(v);
    return map_case(s, name == "upper") == s;
  }
  throw TemplateFault(fmt::format("no test named '{}'", name));
}

Value global_function(const std::string& name) {
  if (name == "range")
    return bound(name, [](CallArgs& a) {
      int64_t start = 0, stop = 0, step = 1;
      size_t n = a.positional.size();
      if (n == 1) {
        stop = to_int_arg(a.positional[0], "range stop");
      } else if (n == 2 || n == 3) {
        start = to_int_arg(a.positional[0], "range start");
        stop = to_int_arg(a.positional[1], "range stop");
        if (n == 3) step = to_int_arg(a.positional[2], "range step");
      } else {
        throw TemplateFault("range expects 1 to 3 arguments");
      }
      if (step == 0) throw TemplateFault("range() arg 3 must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        if (out.size() >= 100000) throw TemplateFault("range too big (jinja2's sandbox allows 100000 items)");
        out.emplace_back(i);
        if (__builtin_add_overflow(i, step, &i)) break;
      }
      return Value(std::move(out));
    });
  if (name == "namespace")
    return bound(name, [](CallArgs& a) {
      Dict attrs;
      for (const Value& p : a.positional) {
        if (!p.is_mapping()) throw TemplateFault("namespace() positional argument must be a mapping");
        for (const auto& [k, v] : p.as_dict().items) attrs.set(k, v);
      }
      for (const auto& [k, v] : a.keyword) attrs.set(k, v);
      return Value::namespace_(std::move(attrs));
    });
  if (name == "dict")
    return bound(name, [](CallArgs& a) {
      Dict d;
      for (const Value& p : a.positional) {
        if (!p.is_mapping()) throw TemplateFault("dict() positional argument must be a mapping");
        for (const auto& [k, v] : p.as_dict().items) d.set(k, v);
      }
      for (const auto& [k, v] : a.keyword) d.set(k, v);
      return Value(std::move(d));
    });
  if (name == "raise_exception")
    return bound(name, [](CallArgs& a) -> Value {
      throw TemplateFault("raise_exception: " + a.get(0, "message").str());
    });
  if (name == "strftime_now")
    return bound(name, [](CallArgs& a) {
      std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, a.get(0, "format").str().c_str(), &local);
      return Value(std::string(buf, n));
    });
  return Value();
}

}  // namespace qwenvl::model::jinja
