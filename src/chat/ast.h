// The template syntax tree the parser builds and the interpreter walks.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace qcoder::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : uint8_t {
  Const,    // value
  Name,     // name
  List,     // args
  Tuple,    // args
  Dict,     // args: key, value, key, value...
  GetAttr,  // args[0] . name
  GetItem,  // args[0] [ args[1] ]
  Slice,    // args: start, stop, step (null = omitted)
  Call,     // args[0] ( call )
  Filter,   // args[0] | name ( call ); args[0] null inside filter blocks
  Test,     // args[0] is [not] name ( call )
  Neg,
  Pos,
  Not,
  Binary,   // name = + - * / // % ** ~
  Compare,  // args[0] (ops[i] args[i+1])...
  And,
  Or,    // args[0], args[1]
  Cond,  // args: then, cond, else (else may be null)
};

struct CallSpec {
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args, dyn_kwargs;
};

struct Expr {
  ExprKind kind;
  size_t offset = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::string> ops;
  CallSpec call;
  bool negated = false;
  int depth = 1;  // height of this subtree (bounded by ParseLimits::max_depth)
};

enum class StmtKind : uint8_t {
  Output,       // text
  Print,        // expr
  If,           // branches (expr, body), else_body
  For,          // targets, expr (iterable), filter, body, else_body, recursive
  Set,          // targets (Name/Tuple/GetAttr), expr
  SetBlock,     // target name, body, filter (a Filter expr chain with null base) or null
  Macro,        // name, params, defaults, body
  CallBlock,    // expr (the call), params (caller's), body
  FilterBlock,  // filter chain, body
  With,         // targets + values, body
  Break,
  Continue,
  Do,     // expr
  Block,  // body rendered in place (generation, autoescape, block)
};

struct Stmt {
  StmtKind kind;
  size_t offset = 0;
  std::string text;
  ExprPtr expr, filter, target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  bool recursive = false;
  // Macro / call block: parameter names and default expressions (null = none).
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;
  bool uses_caller = false, uses_varargs = false, uses_kwargs = false;
  // With: targets and values.
  std::vector<ExprPtr> targets, values;
};

struct TemplateAst {
  Body body;
};

}  // namespace qcoder::jinja
