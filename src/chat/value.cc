#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "chat/unicode.h"

namespace qcoder::jinja {

void raise(const std::string& type, const std::string& message) { throw PyError{type, message}; }

Value Value::undefined(std::string hint, std::string error_type) {
  Value v(Kind::Undefined);
  if (!hint.empty() || error_type != "UndefinedError") {
    auto u = std::make_shared<UndefinedObject>();
    u->hint = std::move(hint);
    u->error_type = std::move(error_type);
    v.obj_ = std::move(u);
  }
  return v;
}
Value Value::big_integer(std::string digits) {
  Value v(Kind::BigInt);
  v.obj_ = std::make_shared<StrObject>(std::move(digits));
  return v;
}
Value Value::string(std::string s, bool markup) {
  Value v(Kind::String);
  v.obj_ = std::make_shared<StrObject>(std::move(s));
  v.markup_ = markup;
  return v;
}
int nesting_depth(const Value& v) {
  switch (v.kind()) {
    case Kind::List:
      return static_cast<const ListObject*>(v.identity())->depth;
    case Kind::Dict:
      return v.dict_obj().depth;
    case Kind::Namespace:
      return v.ns().depth;
    default:
      return 0;
  }
}

namespace {
int checked_depth(int child_depth) {
  if (child_depth + 1 > kMaxNesting)
    raise("RecursionError", "values nested deeper than " + std::to_string(kMaxNesting) + " levels");
  return child_depth + 1;
}
}  // namespace

bool holds_object(const Value& v, const Object* target, int depth) {
  if (v.identity() == target && target) return true;
  if (depth > kMaxNesting + 2) return false;
  switch (v.kind()) {
    case Kind::List:
      for (const Value& x : v.items())
        if (holds_object(x, target, depth + 1)) return true;
      return false;
    case Kind::Dict:
      for (const auto& [k, x] : v.dict_obj().entries)
        if (holds_object(k, target, depth + 1) || holds_object(x, target, depth + 1)) return true;
      return false;
    case Kind::Namespace:
      for (const auto& [k, x] : v.ns().attrs)
        if (holds_object(x, target, depth + 1)) return true;
      return false;
    case Kind::Loop:
      for (const Value& x : v.loop_obj().items)
        if (holds_object(x, target, depth + 1)) return true;
      return false;
    case Kind::Callable:
      if (const Value* self = v.fn().bound_self()) return holds_object(*self, target, depth + 1);
      return false;
    default:
      return false;
  }
}

Value Value::list(std::vector<Value> items) {
  Value v(Kind::List);
  auto l = std::make_shared<ListObject>();
  int d = 0;
  for (const Value& x : items) d = std::max(d, nesting_depth(x));
  l->depth = checked_depth(d);
  l->items = std::move(items);
  v.obj_ = std::move(l);
  return v;
}
Value Value::tuple(std::vector<Value> items) {
  Value v = list(std::move(items));
  static_cast<ListObject*>(v.obj_.get())->is_tuple = true;
  return v;
}
Value Value::dict() { return dict(std::make_shared<DictObject>()); }
Value Value::dict(std::shared_ptr<DictObject> d) {
  Value v(Kind::Dict);
  v.obj_ = std::move(d);
  return v;
}
Value Value::callable(std::shared_ptr<CallableObject> c) {
  Value v(Kind::Callable);
  v.obj_ = std::move(c);
  return v;
}
Value Value::namespace_(std::shared_ptr<NamespaceObject> n) {
  Value v(Kind::Namespace);
  v.obj_ = std::move(n);
  return v;
}
Value Value::loop(std::shared_ptr<LoopObject> l) {
  Value v(Kind::Loop);
  v.obj_ = std::move(l);
  return v;
}

bool Value::is_tuple() const {
  return kind_ == Kind::List && static_cast<const ListObject*>(obj_.get())->is_tuple;
}
double Value::as_float() const {
  switch (kind_) {
    case Kind::Bool:
      return b_ ? 1.0 : 0.0;
    case Kind::Int:
      return static_cast<double>(i_);
    case Kind::BigInt:
      return std::strtod(str().c_str(), nullptr);
    case Kind::Float:
      return f_;
    default:
      return 0.0;
  }
}
const DictObject& Value::dict_obj() const { return *static_cast<const DictObject*>(obj_.get()); }
DictObject& Value::mutable_dict() { return *static_cast<DictObject*>(obj_.get()); }
NamespaceObject& Value::ns() const { return *static_cast<NamespaceObject*>(obj_.get()); }
CallableObject& Value::fn() const { return *static_cast<CallableObject*>(obj_.get()); }
LoopObject& Value::loop_obj() const { return *static_cast<LoopObject*>(obj_.get()); }

const Value* DictObject::find(std::string_view key) const {
  auto it = str_index.find(std::string(key));
  return it == str_index.end() ? nullptr : &entries[it->second].second;
}
const Value* DictObject::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& [k, v] : entries)
    if (!k.is_string() && py_equal(k, key)) return &v;
  return nullptr;
}
void DictObject::set(const Value& key, Value value) {
  depth = std::max({depth, checked_depth(nesting_depth(key)), checked_depth(nesting_depth(value))});
  if (key.is_string()) {
    auto it = str_index.find(key.str());
    if (it != str_index.end()) {
      entries[it->second].second = std::move(value);
      return;
    }
    str_index.emplace(key.str(), entries.size());
    entries.emplace_back(key.with_markup(false), std::move(value));
    return;
  }
  for (auto& [k, v] : entries)
    if (!k.is_string() && py_equal(k, key)) {
      v = std::move(value);
      return;
    }
  entries.emplace_back(key, std::move(value));
}

const Value* NamespaceObject::find(std::string_view name) const {
  for (const auto& [k, v] : attrs)
    if (k == name) return &v;
  return nullptr;
}
void NamespaceObject::set(const std::string& name, Value value) {
  if (holds_object(value, this))
    raise("RecursionError",
          "a namespace cannot hold itself (qcoder does not support reference cycles)");
  depth = std::max(depth, checked_depth(nesting_depth(value)));
  for (auto& [k, v] : attrs)
    if (k == name) {
      v = std::move(value);
      return;
    }
  attrs.emplace_back(name, std::move(value));
}

const Value* CallArgs::kwarg(std::string_view name) const {
  for (const auto& [k, v] : kwargs)
    if (k == name) return &v;
  return nullptr;
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string out;
  if (sci[0] == '-') {
    out = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::atoi(sci.c_str() + e + 1);
  const int decpt = exp10 + 1;
  const int nd = static_cast<int>(digits.size());
  if (decpt <= -4 || decpt > 16) {
    out += digits[0];
    if (nd > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += eb;
  } else if (decpt <= 0) {
    out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  } else if (decpt >= nd) {
    out += digits + std::string(static_cast<size_t>(decpt - nd), '0') + ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(decpt)) + "." +
           digits.substr(static_cast<size_t>(decpt));
  }
  return out;
}

std::string repr_string(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const char32_t c = unicode::next(s, i);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (!unicode::is_printable(c)) {
      unicode::append_python_escape(out, c);
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += quote;
  return out;
}

namespace {

void append_repr(std::string& out, const Value& v);

void append_seq(std::string& out, const Value& v) {
  const bool tuple = v.is_tuple();
  out += tuple ? '(' : '[';
  const auto& items = v.items();
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    append_repr(out, items[i]);
  }
  if (tuple && items.size() == 1) out += ',';
  out += tuple ? ')' : ']';
}

void append_dict(std::string& out, const Value& v) {
  out += '{';
  bool first = true;
  for (const auto& [k, val] : v.dict_obj().entries) {
    if (!first) out += ", ";
    first = false;
    append_repr(out, k);
    out += ": ";
    append_repr(out, val);
  }
  out += '}';
}

void append_repr(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Kind::String:
      if (v.is_markup())
        out += "Markup(" + repr_string(v.str()) + ")";
      else
        out += repr_string(v.str());
      return;
    case Kind::Undefined:
      out += "Undefined";
      return;
    default:
      append_str(out, v);
  }
}

}  // namespace

void append_str(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return;
    case Kind::None:
      out += "None";
      return;
    case Kind::Bool:
      out += v.as_bool() ? "True" : "False";
      return;
    case Kind::Int:
      out += std::to_string(v.as_int());
      return;
    case Kind::BigInt:
      out += v.bigint_digits();
      return;
    case Kind::Float:
      out += float_repr(v.as_float());
      return;
    case Kind::String:
      out += v.str();
      return;
    case Kind::List:
      append_seq(out, v);
      return;
    case Kind::Dict:
      append_dict(out, v);
      return;
    case Kind::Namespace: {
      out += "<Namespace {";
      bool first = true;
      for (const auto& [k, val] : v.ns().attrs) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(k) + ": ";
        append_repr(out, val);
      }
      out += "}>";
      return;
    }
    case Kind::Callable:
      out += "<function " + v.fn().name + ">";
      return;
    case Kind::Loop: {
      const LoopObject& l = v.loop_obj();
      out += "<LoopContext " + std::to_string(l.index0 + 1) + "/" + std::to_string(l.items.size()) +
             ">";
      return;
    }
  }
}

std::string py_str(const Value& v) {
  std::string out;
  append_str(out, v);
  return out;
}

std::string py_repr(const Value& v) {
  std::string out;
  append_repr(out, v);
  return out;
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
    case Kind::BigInt:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return v.is_markup() ? "Markup" : "str";
    case Kind::List:
      return v.is_tuple() ? "tuple" : "list";
    case Kind::Dict:
      return "dict";
    case Kind::Namespace:
      return "Namespace";
    case Kind::Callable:
      return "function";
    case Kind::Loop:
      return "LoopContext";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return v.as_bool();
    case Kind::Int:
      return v.as_int() != 0;
    case Kind::BigInt:
      return true;
    case Kind::Float:
      return v.as_float() != 0.0;
    case Kind::String:
      return !v.str().empty();
    case Kind::List:
      return !v.items().empty();
    case Kind::Dict:
      return v.dict_obj().size() != 0;
    default:
      return true;
  }
}

namespace {
int compare_numbers(const Value& a, const Value& b) {
  if (a.kind() == Kind::BigInt || b.kind() == Kind::BigInt) {
    if (a.kind() == Kind::BigInt && b.kind() == Kind::BigInt) {
      const std::string &x = a.bigint_digits(), &y = b.bigint_digits();
      const bool nx = x[0] == '-', ny = y[0] == '-';
      if (nx != ny) return nx ? -1 : 1;
      int c = x.size() != y.size() ? (x.size() < y.size() ? -1 : 1)
              : x.compare(y) < 0   ? -1
              : x.compare(y) > 0   ? 1
                                   : 0;
      return nx ? -c : c;
    }
    const Value& big = a.kind() == Kind::BigInt ? a : b;
    const double other = (a.kind() == Kind::BigInt ? b : a).as_float();
    const double bv = big.as_float();
    int c = bv < other ? -1 : bv > other ? 1 : (big.bigint_digits()[0] == '-' ? -1 : 1);
    return a.kind() == Kind::BigInt ? c : -c;
  }
  if (a.kind() != Kind::Float && b.kind() != Kind::Float) {
    const int64_t x = a.kind() == Kind::Bool ? a.as_bool() : a.as_int();
    const int64_t y = b.kind() == Kind::Bool ? b.as_bool() : b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const double x = a.as_float(), y = b.as_float();
  if (x < y) return -1;
  if (x > y) return 1;
  if (x == y) return 0;
  return 2;  // nan: unordered
}
}  // namespace

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      return a.str() == b.str();
    case Kind::List: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!py_equal(x[i], y[i])) return false;
      return true;
    }
    case Kind::Dict: {
      const auto &x = a.dict_obj(), &y = b.dict_obj();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* o = y.find(k);
        if (!o || !py_equal(v, *o)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

bool py_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == -1;
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (py_equal(x[i], y[i])) continue;
      return py_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  raise("TypeError",
        "'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if (ch < 0x80) {
      ++i;
      switch (ch) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (ch < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", ch);
            out += b;
          } else {
            out += static_cast<char>(ch);
          }
      }
      continue;
    }
    const size_t start = i;
    const char32_t c = unicode::next(s, i);
    if (!ensure_ascii) {
      out.append(s.substr(start, i - start));
    } else {
      char b[16];
      if (c < 0x10000) {
        std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      } else {
        const char32_t v = c - 0x10000;
        std::snprintf(b, sizeof b, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                      static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      }
      out += b;
    }
  }
  out += '"';
}

namespace {

void dump(std::string& out, const Value& v, const JsonDumpOptions& o, int level);

void newline_indent(std::string& out, const JsonDumpOptions& o, int level) {
  out += '\n';
  for (int i = 0; i < level; ++i) out += *o.indent;
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Kind::String:
      return k.str();
    case Kind::Bool:
      return k.as_bool() ? "true" : "false";
    case Kind::None:
      return "null";
    case Kind::Int:
    case Kind::BigInt:
      return py_str(k);
    case Kind::Float: {
      const double d = k.as_float();
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
      return float_repr(d);
    }
    default:
      raise("TypeError", "keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

void dump(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  switch (v.kind()) {
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Kind::Int:
    case Kind::BigInt:
      append_str(out, v);
      return;
    case Kind::Float: {
      const double d = v.as_float();
      if (std::isnan(d))
        out += "NaN";
      else if (std::isinf(d))
        out += d < 0 ? "-Infinity" : "Infinity";
      else
        out += float_repr(d);
      return;
    }
    case Kind::String:
      append_json_string(out, v.str(), o.ensure_ascii);
      return;
    case Kind::List: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_sep;
        if (o.indent) newline_indent(out, o, level + 1);
        dump(out, items[i], o, level + 1);
      }
      if (o.indent) newline_indent(out, o, level);
      out += ']';
      return;
    }
    case Kind::Dict: {
      const auto& d = v.dict_obj();
      if (d.size() == 0) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      entries.reserve(d.size());
      for (const auto& [k, val] : d.entries) entries.emplace_back(json_key(k), &val);
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += o.item_sep;
        if (o.indent) newline_indent(out, o, level + 1);
        append_json_string(out, entries[i].first, o.ensure_ascii);
        out += o.key_sep;
        dump(out, *entries[i].second, o, level + 1);
      }
      if (o.indent) newline_indent(out, o, level);
      out += '}';
      return;
    }
    default:
      raise("TypeError", "Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string json_dumps(const Value& v, const JsonDumpOptions& opts) {
  std::string out;
  dump(out, v, opts, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::big_integer(std::to_string(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = Value::dict();
      for (const auto& [k, e] : j.items()) d.mutable_dict().set(Value::string(k), from_json(e));
      return d;
    }
    default:
      return Value::none();
  }
}

nlohmann::ordered_json to_json(const Value& v) {
  switch (v.kind()) {
    case Kind::Bool:
      return v.as_bool();
    case Kind::Int:
      return v.as_int();
    case Kind::BigInt:
      return nlohmann::ordered_json::parse(v.bigint_digits());
    case Kind::Float:
      return v.as_float();
    case Kind::String:
      return v.str();
    case Kind::List: {
      auto a = nlohmann::ordered_json::array();
      for (const Value& e : v.items()) a.push_back(to_json(e));
      return a;
    }
    case Kind::Dict: {
      auto o = nlohmann::ordered_json::object();
      for (const auto& [k, e] : v.dict_obj().entries)
        o[k.is_string() ? k.str() : py_str(k)] = to_json(e);
      return o;
    }
    default:
      return nullptr;
  }
}

}  // namespace qcoder::jinja
