#include "chat/parser.h"

#include <set>

namespace qcoder::jinja {
namespace {

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::Data:
      return "template data / text";
    case Tok::VarBegin:
      return "begin of print statement";
    case Tok::VarEnd:
      return "end of print statement";
    case Tok::BlockBegin:
      return "begin of statement block";
    case Tok::BlockEnd:
      return "end of statement block";
    case Tok::Name:
    case Tok::Op:
    case Tok::Integer:
    case Tok::Float:
      return t.text;
    case Tok::String:
      return "string";
    case Tok::Eof:
      return "end of template";
  }
  return "token";
}

class Parser {
 public:
  Parser(const Source& src, const std::vector<Token>& toks, const ParseLimits& limits)
      : src_(src), toks_(toks), limits_(limits) {}

  TemplateAst run() {
    TemplateAst ast;
    ast.body = subparse({});
    if (cur().type != Tok::Eof) fail("unexpected " + describe(cur()));
    return ast;
  }

 private:
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
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
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

  // ---- statements ----

  Body subparse(const std::vector<std::string>& end_tokens) {
    DepthGuard guard(*this);
    Body body;
    while (cur().type != Tok::Eof) {
      const Token& t = cur();
      if (t.type == Tok::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Output;
        s->offset = t.offset;
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == Tok::VarBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Print;
        s->offset = cur().offset;
        s->expr = parse_tuple(false, true, {}, false);
        expect(Tok::VarEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        advance();
        if (cur().type == Tok::Name)
          for (const std::string& e : end_tokens)
            if (cur().text == e) return body;
        parse_statement(body);
        expect(Tok::BlockEnd, "end of statement block");
      } else {
        fail("unexpected " + describe(t));
      }
    }
    if (!end_tokens.empty()) fail_eof(end_tokens);
    return body;
  }

  [[noreturn]] void fail_eof(const std::vector<std::string>& end_tokens) {
    std::string expected;
    for (size_t i = 0; i < end_tokens.size(); ++i)
      expected += (i ? " or '" : "'") + end_tokens[i] + "'";
    std::string msg =
        "Unexpected end of template. Jinja was looking for the following tags: " + expected + ".";
    if (!block_stack_.empty())
      msg += " The innermost block that needs to be closed is '" + block_stack_.back() + "'.";
    fail(msg);
  }

  // After the statement's own tokens: optional ':' then the block end, then the body.
  Body parse_statements(const std::vector<std::string>& end_tokens, bool drop_needle) {
    skip_op(":");
    expect(Tok::BlockEnd, "end of statement block");
    Body b = subparse(end_tokens);
    if (cur().type == Tok::Eof) fail_eof(end_tokens);
    if (drop_needle) advance();
    return b;
  }

  StmtPtr new_stmt(StmtKind k, size_t offset) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->offset = offset;
    return s;
  }

  void parse_statement(Body& out) {
    if (cur().type != Tok::Name) fail("tag name expected");
    const std::string name = cur().text;
    const size_t offset = cur().offset;
    block_stack_.push_back(name);
    struct Pop {
      std::vector<std::string>& s;
      ~Pop() { s.pop_back(); }
    } pop{block_stack_};
    if (name == "if") return out.push_back(parse_if());
    if (name == "for") return out.push_back(parse_for());
    if (name == "set") return out.push_back(parse_set());
    if (name == "macro") return out.push_back(parse_macro());
    if (name == "call") return out.push_back(parse_call_block());
    if (name == "filter") return out.push_back(parse_filter_block());
    if (name == "with") return out.push_back(parse_with());
    if (name == "print") {
      advance();
      bool first = true;
      while (cur().type != Tok::BlockEnd) {
        if (!first) expect_op(",");
        first = false;
        auto s = new_stmt(StmtKind::Print, cur().offset);
        s->expr = parse_expression(true);
        out.push_back(std::move(s));
      }
      return;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) {
        int line, col;
        src_.position(offset, line, col);
        throw TemplateError("SyntaxError", "'" + name + "' outside loop", line, col);
      }
      advance();
      out.push_back(new_stmt(name == "break" ? StmtKind::Break : StmtKind::Continue, offset));
      return;
    }
    if (name == "generation") {
      advance();
      auto s = new_stmt(StmtKind::Block, offset);
      s->body = parse_statements({"endgeneration"}, true);
      out.push_back(std::move(s));
      return;
    }
    if (name == "autoescape") {
      advance();
      auto s = new_stmt(StmtKind::Block, offset);
      s->expr = parse_expression(true);
      s->body = parse_statements({"endautoescape"}, true);
      out.push_back(std::move(s));
      return;
    }
    if (name == "block") {
      advance();
      expect_name();
      skip_name("scoped");
      skip_name("required");
      auto s = new_stmt(StmtKind::Block, offset);
      s->body = parse_statements({"endblock"}, true);
      if (cur().type == Tok::Name) advance();
      out.push_back(std::move(s));
      return;
    }
    if (name == "extends" || name == "include" || name == "import" || name == "from") {
      // No template loader: jinja2 fails when it runs these, so do we.
      auto s = new_stmt(StmtKind::Do, offset);
      s->text = name;
      while (cur().type != Tok::BlockEnd && cur().type != Tok::Eof) advance();
      out.push_back(std::move(s));
      return;
    }
    std::string msg = "Encountered unknown tag '" + name + "'.";
    fail(msg, offset);
  }

  StmtPtr parse_if() {
    auto root = new_stmt(StmtKind::If, cur().offset);
    advance();
    while (true) {
      ExprPtr test = parse_tuple(false, false, {}, false);
      Body body = parse_statements({"elif", "else", "endif"}, false);
      root->branches.emplace_back(std::move(test), std::move(body));
      const std::string tag = cur().text;
      advance();
      if (tag == "elif") continue;
      if (tag == "else") root->else_body = parse_statements({"endif"}, true);
      break;
    }
    return root;
  }

  StmtPtr parse_for() {
    auto s = new_stmt(StmtKind::For, cur().offset);
    advance();
    s->target = parse_assign_target(true, false, {"in"});
    if (!skip_name("in")) fail("expected token 'in', got '" + describe(cur()) + "'");
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->filter = parse_expression(true);
    s->recursive = skip_name("recursive");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    const std::string tag = cur().text;
    advance();
    if (tag == "else") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtPtr parse_set() {
    const size_t offset = cur().offset;
    advance();
    ExprPtr target;
    if (cur().type == Tok::Name && look().type == Tok::Op && look().text == ".") {
      auto ns = make(ExprKind::Name, cur().offset);
      ns->name = expect_name();
      advance();  // the dot
      auto ref = make(ExprKind::GetAttr, ns->offset);
      ref->name = expect_name();
      ref->args.push_back(std::move(ns));
      target = std::move(ref);
    } else {
      target = parse_assign_target(true, false, {});
    }
    if (skip_op("=")) {
      auto s = new_stmt(StmtKind::Set, offset);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    auto s = new_stmt(StmtKind::SetBlock, offset);
    s->target = std::move(target);
    if (is_op("|")) s->filter = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      s.params.push_back(expect_name());
      if (skip_op("="))
        s.defaults.push_back(parse_expression(true));
      else if (!s.defaults.empty())
        fail("non-default argument follows default argument");
    }
    expect_op(")");
  }

  void finish_macro_scope(Stmt& s) {
    const std::set<std::string>& names = name_scopes_.back();
    s.uses_caller = names.count("caller") > 0;
    s.uses_varargs = names.count("varargs") > 0;
    s.uses_kwargs = names.count("kwargs") > 0;
    name_scopes_.pop_back();
  }

  StmtPtr parse_macro() {
    auto s = new_stmt(StmtKind::Macro, cur().offset);
    advance();
    s->text = expect_name();
    parse_signature(*s);
    name_scopes_.emplace_back();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endmacro"}, true);
    loop_depth_ = saved_loops;
    finish_macro_scope(*s);
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = new_stmt(StmtKind::CallBlock, cur().offset);
    advance();
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::Call) fail("expected call", s->offset);
    name_scopes_.emplace_back();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endcall"}, true);
    loop_depth_ = saved_loops;
    finish_macro_scope(*s);
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = new_stmt(StmtKind::FilterBlock, cur().offset);
    advance();
    s->filter = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  StmtPtr parse_with() {
    auto s = new_stmt(StmtKind::With, cur().offset);
    advance();
    while (cur().type != Tok::BlockEnd) {
      if (!s->targets.empty()) expect_op(",");
      s->targets.push_back(parse_assign_target(true, false, {}));
      expect_op("=");
      s->values.push_back(parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  ExprPtr parse_assign_target(bool with_tuple, bool name_only,
                              const std::vector<std::string>& extra_end) {
    ExprPtr target;
    if (name_only) {
      target = make(ExprKind::Name, cur().offset);
      target->name = expect_name();
    } else if (with_tuple) {
      target = parse_tuple(true, true, extra_end, false);
    } else {
      target = parse_primary();
    }
    check_assignable(*target);
    return target;
  }

  void check_assignable(const Expr& e) {
    if (e.kind == ExprKind::Name) {
      if (e.name == "true" || e.name == "false" || e.name == "none" || e.name == "True" ||
          e.name == "False" || e.name == "None")
        fail("Can't assign to " + e.name, e.offset);
      return;
    }
    if (e.kind == ExprKind::Tuple) {
      for (const auto& a : e.args) check_assignable(*a);
      return;
    }
    fail(
        "can't assign to '" + std::string(e.kind == ExprKind::Const ? "const" : "expression") + "'",
        e.offset);
  }

  // ---- expressions ----

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) return true;
    if (cur().type == Tok::Name)
      for (const std::string& e : extra_end)
        if (cur().text == e) return true;
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      const std::vector<std::string>& extra_end, bool explicit_parentheses) {
    const size_t offset = cur().offset;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      if (simplified)
        args.push_back(parse_primary());
      else
        args.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) fail("Expected an expression, got '" + describe(cur()) + "'");
    }
    auto t = make(ExprKind::Tuple, offset);
    t->args = std::move(args);
    return deepen(std::move(t));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const size_t offset = cur().offset;
    ExprPtr expr1 = parse_or();
    while (skip_name("if")) {
      ExprPtr expr2 = parse_or();
      ExprPtr expr3;
      if (skip_name("else")) expr3 = parse_condexpr();
      auto c = make(ExprKind::Cond, offset);
      c->args.push_back(std::move(expr1));
      c->args.push_back(std::move(expr2));
      c->args.push_back(std::move(expr3));
      expr1 = deepen(std::move(c));
    }
    return expr1;
  }

  ExprPtr binary(ExprKind k, ExprPtr a, ExprPtr b, size_t offset, std::string op = {}) {
    auto e = make(k, offset);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return deepen(std::move(e));
  }

  ExprPtr parse_or() {
    const size_t offset = cur().offset;
    ExprPtr left = parse_and();
    while (skip_name("or")) left = binary(ExprKind::Or, std::move(left), parse_and(), offset);
    return left;
  }

  ExprPtr parse_and() {
    const size_t offset = cur().offset;
    ExprPtr left = parse_not();
    while (skip_name("and")) left = binary(ExprKind::And, std::move(left), parse_not(), offset);
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const size_t offset = cur().offset;
      advance();
      auto e = make(ExprKind::Not, offset);
      e->args.push_back(parse_not());
      return deepen(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const size_t offset = cur().offset;
    ExprPtr expr = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
        advance();
        advance();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::Compare, offset);
        cmp->args.push_back(std::move(expr));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? deepen(std::move(cmp)) : std::move(expr);
  }

  ExprPtr parse_math1() {
    const size_t offset = cur().offset;
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      advance();
      left = binary(ExprKind::Binary, std::move(left), parse_concat(), offset, op);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const size_t offset = cur().offset;
    ExprPtr left = parse_math2();
    while (skip_op("~"))
      left = binary(ExprKind::Binary, std::move(left), parse_math2(), offset, "~");
    return left;
  }

  ExprPtr parse_math2() {
    const size_t offset = cur().offset;
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      advance();
      left = binary(ExprKind::Binary, std::move(left), parse_pow(), offset, op);
    }
    return left;
  }

  ExprPtr parse_pow() {
    const size_t offset = cur().offset;
    ExprPtr left = parse_unary(true);
    while (skip_op("**"))
      left = binary(ExprKind::Binary, std::move(left), parse_unary(true), offset, "**");
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    const size_t offset = cur().offset;
    ExprPtr node;
    if (skip_op("-")) {
      node = make(ExprKind::Neg, offset);
      node->args.push_back(parse_unary(false));
      node = deepen(std::move(node));
    } else if (skip_op("+")) {
      node = make(ExprKind::Pos, offset);
      node->args.push_back(parse_unary(false));
      node = deepen(std::move(node));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    ExprPtr node;
    if (t.type == Tok::Name) {
      if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
        node = make(ExprKind::Const, t.offset);
        node->value = Value::boolean(t.text == "true" || t.text == "True");
      } else if (t.text == "none" || t.text == "None") {
        node = make(ExprKind::Const, t.offset);
        node->value = Value::none();
      } else {
        node = make(ExprKind::Name, t.offset);
        node->name = t.text;
        if (!name_scopes_.empty()) name_scopes_.back().insert(t.text);
      }
      advance();
    } else if (t.type == Tok::String) {
      node = make(ExprKind::Const, t.offset);
      std::string s;
      while (cur().type == Tok::String) {
        s += cur().text;
        advance();
      }
      node->value = Value::string(std::move(s));
    } else if (t.type == Tok::Integer || t.type == Tok::Float) {
      node = make(ExprKind::Const, t.offset);
      node->value = number_literal(t);
      advance();
    } else if (is_op("(")) {
      advance();
      node = parse_tuple(false, true, {}, true);
      expect_op(")");
    } else if (is_op("[")) {
      node = make(ExprKind::List, t.offset);
      advance();
      while (!is_op("]")) {
        if (!node->args.empty()) expect_op(",");
        if (is_op("]")) break;
        node->args.push_back(parse_expression(true));
      }
      expect_op("]");
      node = deepen(std::move(node));
    } else if (is_op("{")) {
      node = make(ExprKind::Dict, t.offset);
      advance();
      while (!is_op("}")) {
        if (!node->args.empty()) expect_op(",");
        if (is_op("}")) break;
        node->args.push_back(parse_expression(true));
        expect_op(":");
        node->args.push_back(parse_expression(true));
      }
      expect_op("}");
      node = deepen(std::move(node));
    } else {
      fail("unexpected '" + describe(t) + "'");
    }
    return node;
  }

  Value number_literal(const Token& t) {
    std::string s;
    for (char c : t.text)
      if (c != '_') s += c;
    if (t.type == Tok::Float) return Value::number(std::strtod(s.c_str(), nullptr));
    int base = 10;
    size_t start = 0;
    if (s.size() > 1 && s[0] == '0' && (s[1] | 0x20) != '0' &&
        std::isalpha(static_cast<unsigned char>(s[1]))) {
      const char r = static_cast<char>(s[1] | 0x20);
      base = r == 'b' ? 2 : r == 'o' ? 8 : 16;
      start = 2;
    }
    errno = 0;
    const unsigned long long v = std::strtoull(s.c_str() + start, nullptr, base);
    if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) {
      if (base == 10) return Value::big_integer(s);
      fail("integer literal too large", t.offset);
    }
    return Value::integer(static_cast<int64_t>(v));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("["))
        node = parse_subscript(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        break;
    }
    return node;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|"))
        node = parse_filter(std::move(node), false);
      else if (is_name("is"))
        node = parse_test(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        break;
    }
    return node;
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const size_t offset = cur().offset;
    if (skip_op(".")) {
      const Token& a = cur();
      if (a.type == Tok::Name) {
        auto e = make(ExprKind::GetAttr, offset);
        e->name = a.text;
        e->args.push_back(std::move(node));
        advance();
        return deepen(std::move(e));
      }
      if (a.type != Tok::Integer) fail("expected name or number");
      auto e = make(ExprKind::GetItem, offset);
      auto c = make(ExprKind::Const, a.offset);
      c->value = number_literal(a);
      advance();
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(c));
      return deepen(std::move(e));
    }
    expect_op("[");
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = make(ExprKind::GetItem, offset);
    e->args.push_back(std::move(node));
    if (args.size() == 1) {
      e->args.push_back(std::move(args[0]));
    } else {
      auto t = make(ExprKind::Tuple, offset);
      t->args = std::move(args);
      e->args.push_back(std::move(t));
    }
    return deepen(std::move(e));
  }

  ExprPtr parse_subscribed() {
    const size_t offset = cur().offset;
    std::vector<ExprPtr> args;
    if (skip_op(":")) {
      args.push_back(nullptr);
    } else {
      ExprPtr node = parse_expression(true);
      if (!is_op(":")) return node;
      advance();
      args.push_back(std::move(node));
    }
    if (is_op(":"))
      args.push_back(nullptr);
    else if (!is_op("]") && !is_op(","))
      args.push_back(parse_expression(true));
    else
      args.push_back(nullptr);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(","))
        args.push_back(parse_expression(true));
      else
        args.push_back(nullptr);
    } else {
      args.push_back(nullptr);
    }
    auto s = make(ExprKind::Slice, offset);
    s->args = std::move(args);
    return deepen(std::move(s));
  }

  CallSpec parse_call_args() {
    const size_t offset = cur().offset;
    expect_op("(");
    CallSpec c;
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      if (!ok) fail("invalid syntax for function call expression", offset);
    };
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (skip_op("*")) {
        ensure(!c.dyn_args && !c.dyn_kwargs);
        c.dyn_args = parse_expression(true);
      } else if (skip_op("**")) {
        ensure(!c.dyn_kwargs);
        c.dyn_kwargs = parse_expression(true);
      } else if (cur().type == Tok::Name && look().type == Tok::Op && look().text == "=") {
        ensure(!c.dyn_kwargs);
        std::string key = cur().text;
        advance();
        advance();
        c.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        ensure(!c.dyn_args && !c.dyn_kwargs && c.kwargs.empty());
        c.args.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
    return c;
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(ExprKind::Call, cur().offset);
    e->call = parse_call_args();
    e->args.push_back(std::move(node));
    return deepen(std::move(e));
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) {
      name += '.';
      name += expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) advance();
      auto e = make(ExprKind::Filter, cur().offset);
      e->name = dotted_name();
      if (is_op("(")) e->call = parse_call_args();
      e->args.push_back(std::move(node));
      node = deepen(std::move(e));
      start_inline = false;
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const size_t offset = cur().offset;
    advance();  // is
    const bool negated = skip_name("not");
    auto e = make(ExprKind::Test, offset);
    e->name = dotted_name();
    e->negated = negated;
    const Token& t = cur();
    if (is_op("(")) {
      e->call = parse_call_args();
    } else if ((t.type == Tok::Name || t.type == Tok::String || t.type == Tok::Integer ||
                t.type == Tok::Float || is_op("[") || is_op("{")) &&
               !(t.type == Tok::Name && (t.text == "else" || t.text == "or" || t.text == "and"))) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      e->call.args.push_back(parse_postfix(parse_primary()));
    }
    e->args.push_back(std::move(node));
    return deepen(std::move(e));
  }

  const Source& src_;
  const std::vector<Token>& toks_;
  ParseLimits limits_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::string> block_stack_;
  std::vector<std::set<std::string>> name_scopes_;
};

}  // namespace

TemplateAst parse(const Source& source, const std::vector<Token>& tokens,
                  const ParseLimits& limits) {
  return Parser(source, tokens, limits).run();
}

}  // namespace qcoder::jinja
