// Renders a parsed template: scopes as jinja2 has them (each for-loop iteration and each macro
// call is a new scope; if-blocks are not), Undefined that fails only when used, Python operator
// semantics, and the globals, filters and tests transformers' environment provides.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "chat/ast.h"
#include "chat/lexer.h"

namespace qcoder::jinja {

struct RenderLimits {
  int max_call_depth = 200;                // macro calls, recursive loops, caller()
  int max_eval_depth = 1000;               // nested expression and statement evaluation
  int64_t max_loop_iterations = 10000000;  // summed over all loops of one render
  size_t max_output_bytes = 256u << 20;    // also caps every string and list built
};

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value v);
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { Normal, Break, Continue };

class Interpreter {
 public:
  Interpreter(const Source& source, const RenderLimits& limits);

  // Renders body with vars as the template context.
  std::string render(const TemplateAst& ast,
                     const std::vector<std::pair<std::string, Value>>& vars);

  // Used by filters, tests and methods.
  Value getattr(const Value& obj, const std::string& name);
  Value getitem(const Value& obj, const Value& key);
  std::vector<Value> iterate(const Value& v);
  Value call(const Value& callee, CallArgs& args);
  [[noreturn]] void fail_undefined(const Value& v);
  void check_size(size_t bytes) const;
  void count_iterations(int64_t n);
  Value apply_filter(const std::string& name, const Value& v, CallArgs& args);
  bool apply_test(const std::string& name, const Value& v, CallArgs& args);
  bool has_filter(const std::string& name) const;
  bool has_test(const std::string& name) const;
  Value render_macro(const Stmt& macro, const ScopePtr& closure, CallArgs& args,
                     const Value& caller);
  // Scopes that macros and recursive loops close over live until the render ends: the closures
  // hold them weakly, so a macro stored in its own scope is no reference cycle.
  void keep_alive(const ScopePtr& scope) { captured_.push_back(scope); }

 private:
  friend struct LoopRecursion;
  Value eval(const Expr& e, const ScopePtr& scope);
  Value eval_inner(const Expr& e, const ScopePtr& scope);
  Value lookup(const std::string& name, const ScopePtr& scope) const;
  CallArgs eval_args(const CallSpec& c, const ScopePtr& scope);
  Value eval_compare(const Expr& e, const ScopePtr& scope);
  Value eval_filter_chain(const Expr& e, const ScopePtr& scope, const Value* base);

  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out);
  Flow exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  void run_loop(const Stmt& s, const ScopePtr& scope, std::vector<Value> items, int64_t depth0,
                std::string& out);
  void assign(const Expr& target, const Value& v, const ScopePtr& scope);
  void append_output(std::string& out, std::string_view text) const;
  [[noreturn]] void rethrow_at(const PyError& e, size_t offset) const;

  const Source& source_;
  RenderLimits limits_;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  std::vector<std::pair<std::string, Value>> globals_;
  ScopePtr root_;
  std::vector<ScopePtr> captured_;
};

}  // namespace qcoder::jinja
