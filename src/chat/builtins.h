// The callables, methods, filters and tests of transformers' jinja2 environment.
#pragma once

#include <functional>
#include <string>

#include "chat/interpreter.h"

namespace qcoder::jinja {

struct NativeFunction : CallableObject {
  std::function<Value(Interpreter&, CallArgs&)> fn;
  Value call(Interpreter& in, CallArgs& args) override { return fn(in, args); }
};
Value native(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);

// A method looked up on a value ("abc".startswith): called later with its arguments.
struct BoundMethod : CallableObject {
  Value self;
  Value call(Interpreter& in, CallArgs& args) override;
  const Value* bound_self() const override { return &self; }
};

// Attribute lookup for builtin types: a bound method, an unsafe-attribute undefined, or nullopt
// when the type has no such attribute.
std::optional<Value> builtin_attribute(const Value& obj, const std::string& name);
Value call_method(Interpreter& in, const Value& self, const std::string& name, CallArgs& args);

// jinja2's object_type_repr: "dict object", "None", ...
std::string object_type_repr(const Value& v);

std::vector<std::pair<std::string, Value>> make_globals();

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);
FilterFn find_filter(const std::string& name);
TestFn find_test(const std::string& name);

// Argument helpers: positional index i or keyword name, else nullptr.
const Value* arg(const CallArgs& a, size_t i, const char* name);
int64_t int_arg(const CallArgs& a, size_t i, const char* name, int64_t dflt);
bool bool_arg(const CallArgs& a, size_t i, const char* name, bool dflt);
std::string str_arg(const CallArgs& a, size_t i, const char* name, const std::string& dflt);

}  // namespace qcoder::jinja
