#include "chat/interpreter.h"

#include "chat/builtins.h"
#include "chat/operators.h"
#include "chat/unicode.h"

namespace qcoder::jinja {

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent.get())
    for (auto it = s->vars.rbegin(); it != s->vars.rend(); ++it)
      if (it->first == name) return &it->second;
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& [k, val] : vars)
    if (k == name) {
      val = std::move(v);
      return;
    }
  vars.emplace_back(name, std::move(v));
}

namespace {

// A {% macro %} or the caller of a {% call %} block, closed over the scope it was defined in.
struct Macro : CallableObject {
  const Stmt* def = nullptr;
  std::weak_ptr<Scope> closure;
  Value call(Interpreter& in, CallArgs& args) override {
    const ScopePtr scope = closure.lock();
    if (!scope)
      raise("TemplateRuntimeError",
            "macro " + repr_string(name) + " called after its template finished rendering");
    return in.render_macro(*def, scope, args, Value());
  }
};

struct DepthGuard {
  int& depth;
  DepthGuard(int& d, int limit) : depth(d) {
    if (++depth > limit) {
      --depth;
      raise("RecursionError",
            "maximum template evaluation depth (" + std::to_string(limit) + ") exceeded");
    }
  }
  ~DepthGuard() { --depth; }
};

}  // namespace

Interpreter::Interpreter(const Source& source, const RenderLimits& limits)
    : source_(source), limits_(limits), globals_(make_globals()) {}

void Interpreter::rethrow_at(const PyError& e, size_t offset) const {
  int line, col;
  source_.position(offset, line, col);
  throw TemplateError(e.type, e.message, line, col);
}

void Interpreter::fail_undefined(const Value& v) {
  const UndefinedObject* u = v.undef();
  if (!u) raise("UndefinedError", "undefined value");
  raise(u->error_type, u->hint);
}

void Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes)
    raise("OutputLimitError", "value larger than the output limit of " +
                                  std::to_string(limits_.max_output_bytes) + " bytes");
}

void Interpreter::count_iterations(int64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations)
    raise("LoopLimitError",
          "more than " + std::to_string(limits_.max_loop_iterations) + " loop iterations");
}

void Interpreter::append_output(std::string& out, std::string_view text) const {
  if (out.size() + text.size() > limits_.max_output_bytes)
    raise("OutputLimitError",
          "output larger than " + std::to_string(limits_.max_output_bytes) + " bytes");
  out.append(text);
}

std::string Interpreter::render(const TemplateAst& ast,
                                const std::vector<std::pair<std::string, Value>>& vars) {
  root_ = std::make_shared<Scope>();
  root_->vars = vars;
  std::string out;
  try {
    exec(ast.body, root_, out);
  } catch (...) {
    root_.reset();
    captured_.clear();
    throw;
  }
  root_.reset();
  captured_.clear();
  return out;
}

Value Interpreter::lookup(const std::string& name, const ScopePtr& scope) const {
  if (const Value* v = scope->find(name)) return *v;
  for (const auto& [k, v] : globals_)
    if (k == name) return v;
  return Value::undefined(repr_string(name) + " is undefined");
}

bool Interpreter::has_filter(const std::string& name) const { return find_filter(name) != nullptr; }
bool Interpreter::has_test(const std::string& name) const { return find_test(name) != nullptr; }

Value Interpreter::apply_filter(const std::string& name, const Value& v, CallArgs& args) {
  FilterFn f = find_filter(name);
  if (!f) raise("TemplateRuntimeError", "No filter named " + repr_string(name) + " found.");
  return f(*this, v, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& v, CallArgs& args) {
  TestFn t = find_test(name);
  if (!t) raise("TemplateRuntimeError", "No test named " + repr_string(name) + " found.");
  return t(*this, v, args);
}

Value Interpreter::getattr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (auto attr = builtin_attribute(obj, name)) return *attr;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_obj().find(std::string_view(name))) return *v;
  } else if (obj.kind() == Kind::Namespace) {
    if (const Value* v = obj.ns().find(name)) return *v;
  }
  return Value::undefined(repr_string(object_type_repr(obj)) + " has no attribute " +
                          repr_string(name));
}

Value Interpreter::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (key.is_undefined() && !obj.is_dict()) fail_undefined(key);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_obj().find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) &&
             (key.kind() == Kind::Int || key.kind() == Kind::Bool)) {
    int64_t i = key.kind() == Kind::Bool ? key.as_bool() : key.as_int();
    if (obj.is_list()) {
      const auto n = static_cast<int64_t>(obj.items().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
    } else {
      const std::string& s = obj.str();
      const auto n = static_cast<int64_t>(unicode::length(s));
      if (i < 0) i += n;
      if (i >= 0 && i < n) {
        size_t b = unicode::offset_of(s, static_cast<size_t>(i)), e = b;
        unicode::next(s, e);
        return Value::string(s.substr(b, e - b), obj.is_markup());
      }
    }
  }
  if (key.is_string()) {
    if (obj.kind() == Kind::Namespace) {
      if (const Value* v = obj.ns().find(key.str())) return *v;
    } else if (auto attr = builtin_attribute(obj, key.str())) {
      return *attr;
    }
    return Value::undefined(repr_string(object_type_repr(obj)) + " has no attribute " +
                            repr_string(key.str()));
  }
  return Value::undefined(object_type_repr(obj) + " has no element " + py_repr(key));
}

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::List:
      return v.items();
    case Kind::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_obj().size());
      for (const auto& [k, val] : v.dict_obj().entries) keys.push_back(k);
      return keys;
    }
    case Kind::String: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        unicode::next(s, i);
        chars.push_back(Value::string(s.substr(b, i - b), v.is_markup()));
      }
      return chars;
    }
    case Kind::Undefined:
      return {};
    default:
      raise("TypeError", "'" + type_name(v) + "' object is not iterable");
  }
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) fail_undefined(callee);
  if (callee.kind() == Kind::Loop && callee.loop_obj().recurse)
    return callee.loop_obj().recurse(*this, args);
  if (callee.kind() != Kind::Callable)
    raise("TypeError", "'" + type_name(callee) + "' object is not callable");
  return callee.fn().call(*this, args);
}

CallArgs Interpreter::eval_args(const CallSpec& c, const ScopePtr& scope) {
  CallArgs a;
  for (const auto& e : c.args) a.args.push_back(eval(*e, scope));
  for (const auto& [k, e] : c.kwargs) a.kwargs.emplace_back(k, eval(*e, scope));
  if (c.dyn_args) {
    const Value v = eval(*c.dyn_args, scope);
    for (Value& x : iterate(v)) a.args.push_back(std::move(x));
  }
  if (c.dyn_kwargs) {
    const Value v = eval(*c.dyn_kwargs, scope);
    if (!v.is_dict())
      raise("TypeError", "argument after ** must be a mapping, not " + type_name(v));
    for (const auto& [k, x] : v.dict_obj().entries) {
      if (!k.is_string()) raise("TypeError", "keywords must be strings");
      a.kwargs.emplace_back(k.str(), x);
    }
  }
  return a;
}

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  try {
    DepthGuard guard(eval_depth_, limits_.max_eval_depth);
    return eval_inner(e, scope);
  } catch (const PyError& err) {
    rethrow_at(err, e.offset);
  }
}

Value Interpreter::eval_filter_chain(const Expr& e, const ScopePtr& scope, const Value* base) {
  Value input;
  if (!e.args[0])
    input = base ? *base : Value();
  else if (e.args[0]->kind == ExprKind::Filter)
    input = eval_filter_chain(*e.args[0], scope, base);
  else
    input = eval(*e.args[0], scope);
  try {
    CallArgs a = eval_args(e.call, scope);
    return apply_filter(e.name, input, a);
  } catch (const PyError& err) {
    rethrow_at(err, e.offset);
  }
}

namespace {
std::optional<int64_t> slice_bound(Interpreter& in, const Value& v) {
  if (v.is_none()) return std::nullopt;
  if (v.kind() == Kind::Int) return v.as_int();
  if (v.kind() == Kind::Bool) return v.as_bool() ? 1 : 0;
  if (v.is_undefined()) in.fail_undefined(v);
  raise("TypeError", "slice indices must be integers or None or have an __index__ method");
}
}  // namespace

Value Interpreter::eval_compare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.args[0], scope);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.args[i + 1], scope);
    if (!compare_op(*this, e.ops[i], left, right)) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interpreter::eval_inner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case ExprKind::Const:
      return e.value;
    case ExprKind::Name:
      return lookup(e.name, scope);
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(eval(*a, scope));
      return e.kind == ExprKind::List ? Value::list(std::move(items))
                                      : Value::tuple(std::move(items));
    }
    case ExprKind::Dict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(*e.args[i], scope);
        if (k.is_list() && !k.is_tuple()) raise("TypeError", "unhashable type: 'list'");
        if (k.is_dict()) raise("TypeError", "unhashable type: 'dict'");
        d.mutable_dict().set(k, eval(*e.args[i + 1], scope));
      }
      return d;
    }
    case ExprKind::GetAttr:
      return getattr(eval(*e.args[0], scope), e.name);
    case ExprKind::GetItem: {
      Value obj = eval(*e.args[0], scope);
      const Expr& k = *e.args[1];
      if (k.kind == ExprKind::Slice) {
        if (obj.is_undefined()) fail_undefined(obj);
        std::optional<int64_t> b[3];
        for (int i = 0; i < 3; ++i)
          if (k.args[static_cast<size_t>(i)])
            b[i] = slice_bound(*this, eval(*k.args[static_cast<size_t>(i)], scope));
        if (!obj.is_string() && !obj.is_list())
          return Value::undefined(object_type_repr(obj) + " has no element slice(" +
                                  (b[0] ? std::to_string(*b[0]) : "None") + ", " +
                                  (b[1] ? std::to_string(*b[1]) : "None") + ", " +
                                  (b[2] ? std::to_string(*b[2]) : "None") + ")");
        return slice_value(*this, obj, b[0], b[1], b[2]);
      }
      return getitem(obj, eval(k, scope));
    }
    case ExprKind::Slice:
      raise("TypeError", "slice outside a subscript");
    case ExprKind::Call: {
      Value callee = eval(*e.args[0], scope);
      CallArgs a = eval_args(e.call, scope);
      return call(callee, a);
    }
    case ExprKind::Filter:
      return eval_filter_chain(e, scope, nullptr);
    case ExprKind::Test: {
      Value v = eval(*e.args[0], scope);
      CallArgs a = eval_args(e.call, scope);
      const bool r = apply_test(e.name, v, a);
      return Value::boolean(e.negated ? !r : r);
    }
    case ExprKind::Neg:
      return unary_op(*this, '-', eval(*e.args[0], scope));
    case ExprKind::Pos:
      return unary_op(*this, '+', eval(*e.args[0], scope));
    case ExprKind::Not:
      return Value::boolean(!truthy(eval(*e.args[0], scope)));
    case ExprKind::Binary: {
      Value a = eval(*e.args[0], scope);
      Value b = eval(*e.args[1], scope);
      return binary_op(*this, e.name, a, b);
    }
    case ExprKind::Compare:
      return eval_compare(e, scope);
    case ExprKind::And: {
      Value a = eval(*e.args[0], scope);
      return truthy(a) ? eval(*e.args[1], scope) : a;
    }
    case ExprKind::Or: {
      Value a = eval(*e.args[0], scope);
      return truthy(a) ? a : eval(*e.args[1], scope);
    }
    case ExprKind::Cond: {
      if (truthy(eval(*e.args[1], scope))) return eval(*e.args[0], scope);
      if (e.args[2]) return eval(*e.args[2], scope);
      int line, col;
      source_.position(e.offset, line, col);
      return Value::undefined("the inline if-expression on line " + std::to_string(line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Value();
}

void Interpreter::assign(const Expr& target, const Value& v, const ScopePtr& scope) {
  if (target.kind == ExprKind::Name) {
    scope->set(target.name, v);
    return;
  }
  if (target.kind == ExprKind::Tuple) {
    std::vector<Value> items = iterate(v);
    if (items.size() != target.args.size()) {
      if (items.size() < target.args.size())
        raise("ValueError", "not enough values to unpack (expected " +
                                std::to_string(target.args.size()) + ", got " +
                                std::to_string(items.size()) + ")");
      raise("ValueError",
            "too many values to unpack (expected " + std::to_string(target.args.size()) + ")");
    }
    for (size_t i = 0; i < items.size(); ++i) assign(*target.args[i], items[i], scope);
    return;
  }
  if (target.kind == ExprKind::GetAttr) {  // {% set ns.attr = ... %}
    Value ns = lookup(target.args[0]->name, scope);
    if (ns.kind() != Kind::Namespace)
      raise("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
    if (!target.name.empty() && target.name[0] == '_')
      raise("SecurityError",
            "Chat templates cannot store underscore-prefixed attributes on a namespace, but got " +
                repr_string(target.name) + ". Please rename the attribute.");
    ns.ns().set(target.name, v);
    return;
  }
  raise("TemplateSyntaxError", "cannot assign to this expression");
}

Flow Interpreter::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const StmtPtr& s : body) {
    Flow f;
    try {
      DepthGuard guard(eval_depth_, limits_.max_eval_depth);
      f = exec_stmt(*s, scope, out);
    } catch (const PyError& err) {
      rethrow_at(err, s->offset);
    }
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Value Interpreter::render_macro(const Stmt& def, const ScopePtr& closure, CallArgs& args,
                                const Value& caller) {
  if (++call_depth_ > limits_.max_call_depth) {
    --call_depth_;
    raise("RecursionError", "maximum template recursion depth (" +
                                std::to_string(limits_.max_call_depth) + ") exceeded");
  }
  struct Depth {
    int& d;
    ~Depth() { --d; }
  } depth{call_depth_};
  const std::string& name = def.kind == StmtKind::Macro ? def.text : std::string("caller");
  auto scope = std::make_shared<Scope>();
  scope->parent = closure;
  const size_t n = def.params.size();
  std::vector<std::pair<std::string, Value>> kwargs = args.kwargs;
  std::vector<bool> given(n, false);
  for (size_t i = 0; i < n && i < args.args.size(); ++i) {
    scope->set(def.params[i], args.args[i]);
    given[i] = true;
  }
  for (size_t i = args.args.size(); i < n; ++i) {
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it)
      if (it->first == def.params[i]) {
        scope->set(def.params[i], it->second);
        given[i] = true;
        kwargs.erase(it);
        break;
      }
  }
  Value caller_value = caller;
  if (def.uses_caller && caller_value.is_undefined()) {
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it)
      if (it->first == "caller") {
        caller_value = it->second;
        kwargs.erase(it);
        break;
      }
    if (caller_value.is_undefined()) caller_value = Value::undefined("No caller defined");
  }
  if (def.uses_caller) scope->set("caller", caller_value);
  if (def.uses_kwargs) {
    Value d = Value::dict();
    for (auto& [k, v] : kwargs) d.mutable_dict().set(Value::string(k), v);
    scope->set("kwargs", d);
  } else if (!kwargs.empty()) {
    if (kwargs.front().first == "caller")
      raise("TypeError", "macro " + repr_string(name) +
                             " was invoked with two values for the special caller argument. This "
                             "is most likely a bug.");
    raise("TypeError", "macro " + repr_string(name) + " takes no keyword argument " +
                           repr_string(kwargs.front().first));
  }
  if (def.uses_varargs) {
    std::vector<Value> extra;
    for (size_t i = n; i < args.args.size(); ++i) extra.push_back(args.args[i]);
    scope->set("varargs", Value::tuple(std::move(extra)));
  } else if (args.args.size() > n) {
    raise("TypeError", "macro " + repr_string(name) + " takes not more than " + std::to_string(n) +
                           " argument(s)");
  }
  // Defaults belong to the last parameters and are evaluated in the macro's scope, in order.
  const size_t first_default = n - def.defaults.size();
  for (size_t i = 0; i < n; ++i) {
    if (given[i]) continue;
    if (i >= first_default)
      scope->set(def.params[i], eval(*def.defaults[i - first_default], scope));
    else
      scope->set(def.params[i],
                 Value::undefined("parameter " + repr_string(def.params[i]) + " was not provided"));
  }
  std::string out;
  exec(def.body, scope, out);
  return Value::string(std::move(out));
}

Flow Interpreter::exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out) {
  switch (s.kind) {
    case StmtKind::Output:
      append_output(out, s.text);
      return Flow::Normal;
    case StmtKind::Print: {
      const Value v = eval(*s.expr, scope);
      if (v.is_string())
        append_output(out, v.str());
      else if (!v.is_undefined())
        append_output(out, py_str(v));
      return Flow::Normal;
    }
    case StmtKind::If: {
      for (const auto& [test, body] : s.branches)
        if (truthy(eval(*test, scope))) return exec(body, scope, out);
      return exec(s.else_body, scope, out);
    }
    case StmtKind::For:
      return exec_for(s, scope, out);
    case StmtKind::Set:
      assign(*s.target, eval(*s.expr, scope), scope);
      return Flow::Normal;
    case StmtKind::SetBlock: {
      std::string text;
      exec(s.body, scope, text);
      Value v = Value::string(std::move(text));
      if (s.filter) v = eval_filter_chain(*s.filter, scope, &v);
      assign(*s.target, v, scope);
      return Flow::Normal;
    }
    case StmtKind::Macro: {
      auto m = std::make_shared<Macro>();
      m->name = s.text;
      m->def = &s;
      m->closure = scope;
      keep_alive(scope);
      scope->set(s.text, Value::callable(m));
      return Flow::Normal;
    }
    case StmtKind::CallBlock: {
      auto caller = std::make_shared<Macro>();
      caller->name = "caller";
      caller->def = &s;
      caller->closure = scope;
      keep_alive(scope);
      const Expr& c = *s.expr;
      Value callee = eval(*c.args[0], scope);
      CallArgs a = eval_args(c.call, scope);
      a.kwargs.emplace_back("caller", Value::callable(caller));
      Value v;
      try {
        v = call(callee, a);
      } catch (const PyError& err) {
        rethrow_at(err, c.offset);
      }
      if (v.is_string())
        append_output(out, v.str());
      else if (!v.is_undefined())
        append_output(out, py_str(v));
      return Flow::Normal;
    }
    case StmtKind::FilterBlock: {
      std::string text;
      exec(s.body, scope, text);
      const Value body = Value::string(std::move(text));
      const Value v = eval_filter_chain(*s.filter, scope, &body);
      if (v.is_string())
        append_output(out, v.str());
      else if (!v.is_undefined())
        append_output(out, py_str(v));
      return Flow::Normal;
    }
    case StmtKind::With: {
      std::vector<Value> values;
      for (const auto& v : s.values) values.push_back(eval(*v, scope));
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      for (size_t i = 0; i < values.size(); ++i) assign(*s.targets[i], values[i], inner);
      return exec(s.body, inner, out);
    }
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
    case StmtKind::Do:
      raise("TypeError",
            "no loader for this environment specified ({% " + s.text + " %} is not supported)");
    case StmtKind::Block:
      return exec(s.body, scope, out);
  }
  return Flow::Normal;
}

Flow Interpreter::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  std::vector<Value> items = iterate(eval(*s.expr, scope));
  run_loop(s, scope, std::move(items), 0, out);
  return Flow::Normal;
}

namespace {
struct LoopRecurse : CallableObject {
  std::function<Value(const Value&)> run;
  Value call(Interpreter&, CallArgs& args) override {
    if (args.args.size() != 1) raise("TypeError", "loop() takes exactly one argument");
    return run(args.args[0]);
  }
};
}  // namespace

void Interpreter::run_loop(const Stmt& s, const ScopePtr& scope, std::vector<Value> items,
                           int64_t depth0, std::string& out) {
  if (s.filter) {
    std::vector<Value> kept;
    for (Value& item : items) {
      count_iterations(1);
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      assign(*s.target, item, probe);
      if (truthy(eval(*s.filter, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec(s.else_body, scope, out);
    return;
  }
  auto loop = std::make_shared<LoopObject>();
  loop->items = std::move(items);
  loop->depth0 = depth0;
  Value loop_value = Value::loop(loop);
  if (s.recursive) {
    auto r = std::make_shared<LoopRecurse>();
    r->name = "loop";
    keep_alive(scope);
    r->run = [this, &s, weak = std::weak_ptr<Scope>(scope), depth0](const Value& iterable) {
      const ScopePtr closure = weak.lock();
      if (!closure) raise("TemplateRuntimeError", "loop() called after its loop finished");
      if (++call_depth_ > limits_.max_call_depth) {
        --call_depth_;
        raise("RecursionError", "maximum template recursion depth (" +
                                    std::to_string(limits_.max_call_depth) + ") exceeded");
      }
      struct Depth {
        int& d;
        ~Depth() { --d; }
      } depth{call_depth_};
      std::string text;
      run_loop(s, closure, iterate(iterable), depth0 + 1, text);
      return Value::string(std::move(text));
    };
    loop->recurse = [r](Interpreter& in, CallArgs& a) { return r->call(in, a); };
  }
  for (size_t i = 0; i < loop->items.size(); ++i) {
    count_iterations(1);
    loop->index0 = i;
    auto iter_scope = std::make_shared<Scope>();
    iter_scope->parent = scope;
    assign(*s.target, loop->items[i], iter_scope);
    iter_scope->set("loop", loop_value);
    const Flow f = exec(s.body, iter_scope, out);
    if (f == Flow::Break) break;
  }
}

}  // namespace qcoder::jinja
