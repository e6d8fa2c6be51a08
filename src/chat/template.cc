#include "chat/template.h"

#include "chat/builtins.h"

namespace qcoder::jinja {
namespace {

// jinja2 resolves filter and test names when it compiles, so an unknown name fails the whole
// template, except inside if-blocks and conditional expressions, where it fails when it runs.
void check_names(const Source& src, const Expr* e, bool conditional);
void check_names(const Source& src, const Body& body, bool conditional);

[[noreturn]] void assertion(const Source& src, size_t offset, const std::string& msg) {
  int line, col;
  src.position(offset, line, col);
  throw TemplateError("TemplateAssertionError", msg, line, col);
}

void check_call(const Source& src, const CallSpec& c, bool cond) {
  for (const auto& a : c.args) check_names(src, a.get(), cond);
  for (const auto& [k, a] : c.kwargs) check_names(src, a.get(), cond);
  check_names(src, c.dyn_args.get(), cond);
  check_names(src, c.dyn_kwargs.get(), cond);
}

void check_names(const Source& src, const Expr* e, bool cond) {
  if (!e) return;
  if (!cond && e->kind == ExprKind::Filter && !find_filter(e->name))
    assertion(src, e->offset, "No filter named " + repr_string(e->name) + ".");
  if (!cond && e->kind == ExprKind::Test && !find_test(e->name))
    assertion(src, e->offset, "No test named " + repr_string(e->name) + ".");
  for (const auto& a : e->args) check_names(src, a.get(), cond || e->kind == ExprKind::Cond);
  check_call(src, e->call, cond);
}

void check_names(const Source& src, const Body& body, bool cond) {
  for (const StmtPtr& s : body) {
    const bool inner = s->kind == StmtKind::Macro || s->kind == StmtKind::CallBlock ? false : cond;
    check_names(src, s->expr.get(), cond);
    check_names(src, s->filter.get(), cond);
    check_names(src, s->target.get(), cond);
    for (const auto& [test, b] : s->branches) {
      check_names(src, test.get(), true);
      check_names(src, b, true);
    }
    check_names(src, s->body, inner);
    check_names(src, s->else_body, s->kind == StmtKind::If ? true : cond);
    for (const auto& d : s->defaults) check_names(src, d.get(), cond);
    for (const auto& t : s->targets) check_names(src, t.get(), cond);
    for (const auto& v : s->values) check_names(src, v.get(), cond);
  }
}

}  // namespace

Template::Template(std::string_view source, const TemplateOptions& options)
    : source_(std::make_shared<Source>(source, false)), options_(options) {
  const std::vector<Token> tokens = tokenize(*source_);
  ast_ = std::make_shared<TemplateAst>(parse(*source_, tokens, options_.parse));
  check_names(*source_, ast_->body, false);
}

std::string Template::render(const std::vector<std::pair<std::string, Value>>& vars) const {
  Interpreter in(*source_, options_.render);
  try {
    return in.render(*ast_, vars);
  } catch (const PyError& e) {
    throw TemplateError(e.type, e.message, 1, 1);
  }
}

std::string Template::render(const nlohmann::ordered_json& vars) const {
  std::vector<std::pair<std::string, Value>> v;
  try {
    if (vars.is_object())
      for (const auto& [k, x] : vars.items()) v.emplace_back(k, from_json(x));
  } catch (const PyError& e) {
    throw TemplateError(e.type, "template variables: " + e.message, 1, 1);
  }
  return render(v);
}

}  // namespace qcoder::jinja
