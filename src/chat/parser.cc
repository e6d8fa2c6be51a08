// Statements and the template body, as jinja2's Parser.subparse / parse_statement; the
// expressions inside them come from ExpressionParser (expression_parser.cc).
#include "chat/parser.h"

#include <set>

#include "chat/expression_parser.h"

namespace qcoder::jinja {
namespace {

// Statements and the template body; the expressions they hold come from ExpressionParser.
class StatementParser : public ExpressionParser {
 public:
  using ExpressionParser::ExpressionParser;

  TemplateAst run() {
    TemplateAst ast;
    ast.body = subparse({});
    if (cur().type != Tok::Eof) fail("unexpected " + describe(cur()));
    return ast;
  }

 private:
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

  int loop_depth_ = 0;
  std::vector<std::string> block_stack_;
};

}  // namespace

TemplateAst parse(const Source& source, const std::vector<Token>& tokens,
                  const ParseLimits& limits) {
  return StatementParser(source, tokens, limits).run();
}

}  // namespace qcoder::jinja
