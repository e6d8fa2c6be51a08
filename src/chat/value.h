// The values a chat template computes with, with Python's semantics (jinja2 runs on Python
// objects): str() and repr(), ==, ordering, truthiness, json.dumps. Containers are shared
// (reference semantics, as in Python); templates cannot mutate lists or dicts (transformers uses
// ImmutableSandboxedEnvironment), only namespaces.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace qcoder::jinja {

// A Python exception raised while rendering, before it gets a template position: type is the
// Python class name ("TypeError", "UndefinedError", ...).
struct PyError {
  std::string type, message;
};
[[noreturn]] void raise(const std::string& type, const std::string& message);

// Containers nest at most this deep (Python would raise RecursionError printing deeper ones);
// the bound keeps printing, comparing and destroying values off the end of the stack.
constexpr int kMaxNesting = 512;

enum class Kind : uint8_t {
  Undefined,
  None,
  Bool,
  Int,
  BigInt,
  Float,
  String,
  List,
  Dict,
  Namespace,
  Callable,
  Loop
};

class Value;
struct Object {
  virtual ~Object() = default;
};

struct StrObject : Object {
  explicit StrObject(std::string v) : s(std::move(v)) {}
  std::string s;
};
struct ListObject;
struct DictObject;
struct NamespaceObject;
struct CallableObject;
struct LoopObject;
// What an undefined value knows for its error message: jinja2's Undefined hint.
struct UndefinedObject : Object {
  std::string hint;  // full message when set
  std::string error_type = "UndefinedError";
};

class Value {
 public:
  Value() = default;  // undefined
  static Value undefined(std::string hint = {}, std::string error_type = "UndefinedError");
  static Value none() { return Value(Kind::None); }
  static Value boolean(bool b) {
    Value v(Kind::Bool);
    v.b_ = b;
    return v;
  }
  static Value integer(int64_t i) {
    Value v(Kind::Int);
    v.i_ = i;
    return v;
  }
  static Value big_integer(std::string digits);  // beyond int64: kept as decimal text
  static Value number(double f) {
    Value v(Kind::Float);
    v.f_ = f;
    return v;
  }
  static Value string(std::string s, bool markup = false);
  static Value list(std::vector<Value> items = {});
  static Value tuple(std::vector<Value> items);
  static Value dict();
  static Value dict(std::shared_ptr<DictObject> d);
  static Value callable(std::shared_ptr<CallableObject> c);
  static Value namespace_(std::shared_ptr<NamespaceObject> n);
  static Value loop(std::shared_ptr<LoopObject> l);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int || kind_ == Kind::BigInt; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_number() const { return kind_ == Kind::Bool || is_int() || kind_ == Kind::Float; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }  // list or tuple
  bool is_tuple() const;
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_markup() const { return markup_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }  // Int (or Bool as 0/1)
  double as_float() const;               // any number
  const std::string& str() const { return static_cast<const StrObject*>(obj_.get())->s; }
  const std::string& bigint_digits() const { return str(); }
  const std::vector<Value>& items() const;
  std::vector<Value>& mutable_items();
  const DictObject& dict_obj() const;
  DictObject& mutable_dict();
  NamespaceObject& ns() const;
  CallableObject& fn() const;
  LoopObject& loop_obj() const;
  const UndefinedObject* undef() const { return static_cast<const UndefinedObject*>(obj_.get()); }
  const Object* identity() const { return obj_.get(); }

  Value with_markup(bool m) const {
    Value v = *this;
    v.markup_ = m;
    return v;
  }

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::Undefined;
  bool markup_ = false;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<Object> obj_;
};

struct ListObject : Object {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;  // container nesting, bounded by kMaxNesting
};
inline const std::vector<Value>& Value::items() const {
  return static_cast<const ListObject*>(obj_.get())->items;
}
inline std::vector<Value>& Value::mutable_items() {
  return static_cast<ListObject*>(obj_.get())->items;
}

// An insertion-ordered dict with Python key equality (1 == 1.0 == True).
struct DictObject : Object {
  std::vector<std::pair<Value, Value>> entries;
  int depth = 1;
  std::unordered_map<std::string, size_t> str_index;  // string keys -> position

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value value);  // replaces in place or appends
  size_t size() const { return entries.size(); }
};

struct NamespaceObject : Object {
  std::vector<std::pair<std::string, Value>> attrs;
  int depth = 1;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value value);
};

class Interpreter;
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  const Value* kwarg(std::string_view name) const;
};
struct CallableObject : Object {
  std::string name;
  virtual Value call(Interpreter& in, CallArgs& args) = 0;
  virtual const Value* bound_self() const { return nullptr; }  // a bound method's object
};

// Container nesting of v (0 for scalars).
int nesting_depth(const Value& v);
// Whether v holds target anywhere inside (namespaces are the only mutable objects, so this is
// how a reference cycle would start).
bool holds_object(const Value& v, const Object* target, int depth = 0);

struct LoopObject : Object {
  std::vector<Value> items;
  size_t index0 = 0;
  int64_t depth0 = 0;
  std::function<Value(Interpreter&, CallArgs&)> recurse;  // loop(...) in recursive loops
  Value last_changed;
  bool has_changed = false;
};

// Python str(), repr(), type name, truthiness, ==, <.
std::string py_str(const Value& v);
std::string py_repr(const Value& v);
void append_str(std::string& out, const Value& v);
std::string type_name(const Value& v);
bool truthy(const Value& v);
bool py_equal(const Value& a, const Value& b);
// a < b for numbers, strings and sequences; raises TypeError otherwise.
bool py_less(const Value& a, const Value& b);
std::string float_repr(double d);
std::string repr_string(std::string_view s);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson calls it.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: compact; an int indent is given as spaces
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};
std::string json_dumps(const Value& v, const JsonDumpOptions& opts = {});
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);

// JSON text <-> values, keeping object order. Integers beyond int64 stay exact.
Value from_json(const nlohmann::ordered_json& j);
nlohmann::ordered_json to_json(const Value& v);

}  // namespace qcoder::jinja
