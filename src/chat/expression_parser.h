// The expression half of the template parser (jinja2's parse_tuple down to parse_primary)
// and the token cursor both halves share. parser.cc parses statements on top of it.
#pragma once

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "chat/ast.h"
#include "chat/lexer.h"
#include "chat/parser.h"

namespace qcoder::jinja {

// How jinja2 names a token in its "expected ..., got ..." messages.
std::string describe(const Token& t);

class ExpressionParser {
 public:
  ExpressionParser(const Source& src, const std::vector<Token>& toks, const ParseLimits& limits)
      : src_(src), toks_(toks), limits_(limits) {}

 protected:
  // ---- the token cursor ----

  const Token& cur() const { return toks_[pos_]; }
  const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }

  [[noreturn]] void fail(const std::string& msg, size_t offset) const {
    int line, col;
    src_.position(offset, line, col);
    throw TemplateError("TemplateSyntaxError", msg, line, col);
  }
  [[noreturn]] void fail(const std::string& msg) const { fail(msg, cur().offset); }

  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected token '") + op + "', got '" + describe(cur()) + "'");
    advance();
  }
  void expect(Tok t, const char* what) {
    if (cur().type != t)
      fail(std::string("expected token '") + what + "', got '" + describe(cur()) + "'");
    advance();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail("expected token 'name', got '" + describe(cur()) + "'");
    std::string n = cur().text;
    advance();
    return n;
  }

  struct DepthGuard {
    ExpressionParser& p;
    explicit DepthGuard(ExpressionParser& parser) : p(parser) {
      if (++p.depth_ > p.limits_.max_depth)
        p.fail("template nesting deeper than " + std::to_string(p.limits_.max_depth));
    }
    ~DepthGuard() { --p.depth_; }
  };

  // Sets e's height from its children; fails past the limit (evaluation recurses this deep).
  ExprPtr deepen(ExprPtr e) {
    int d = 0;
    for (const auto& a : e->args)
      if (a) d = std::max(d, a->depth);
    for (const auto& a : e->call.args) d = std::max(d, a->depth);
    for (const auto& [k, a] : e->call.kwargs) d = std::max(d, a->depth);
    if (e->call.dyn_args) d = std::max(d, e->call.dyn_args->depth);
    if (e->call.dyn_kwargs) d = std::max(d, e->call.dyn_kwargs->depth);
    e->depth = d + 1;
    if (e->depth > limits_.max_depth)
      fail("expression nested deeper than " + std::to_string(limits_.max_depth), e->offset);
    return e;
  }

  ExprPtr make(ExprKind k, size_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->offset = offset;
    return e;
  }

  // ---- expressions, loosest binding first (jinja2's parser methods of the same names) ----

  bool is_tuple_end(const std::vector<std::string>& extra_end) const;
  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      const std::vector<std::string>& extra_end, bool explicit_parentheses);
  ExprPtr parse_expression(bool with_condexpr);
  ExprPtr parse_condexpr();
  ExprPtr binary(ExprKind k, ExprPtr a, ExprPtr b, size_t offset, std::string op = {});
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  Value number_literal(const Token& t);
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_subscribed();
  CallSpec parse_call_args();
  ExprPtr parse_call(ExprPtr node);
  std::string dotted_name();
  ExprPtr parse_filter(ExprPtr node, bool start_inline);
  ExprPtr parse_test(ExprPtr node);

  const Source& src_;
  const std::vector<Token>& toks_;
  ParseLimits limits_;
  size_t pos_ = 0;
  int depth_ = 0;  // DepthGuard nesting, statements and expressions together
  // Names read inside each macro or call block being parsed: whether it reads caller, varargs
  // or kwargs decides what it accepts.
  std::vector<std::set<std::string>> name_scopes_;
};

}  // namespace qcoder::jinja
