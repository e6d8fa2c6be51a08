#include "chat/expression_parser.h"

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace qcoder::jinja {

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

bool ExpressionParser::is_tuple_end(const std::vector<std::string>& extra_end) const {
  if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) return true;
  if (cur().type == Tok::Name)
    for (const std::string& e : extra_end)
      if (cur().text == e) return true;
  return false;
}

ExprPtr ExpressionParser::parse_tuple(bool simplified, bool with_condexpr,
                                      const std::vector<std::string>& extra_end,
                                      bool explicit_parentheses) {
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

ExprPtr ExpressionParser::parse_expression(bool with_condexpr) {
  DepthGuard guard(*this);
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr ExpressionParser::parse_condexpr() {
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

ExprPtr ExpressionParser::binary(ExprKind k, ExprPtr a, ExprPtr b, size_t offset, std::string op) {
  auto e = make(k, offset);
  e->name = std::move(op);
  e->args.push_back(std::move(a));
  e->args.push_back(std::move(b));
  return deepen(std::move(e));
}

ExprPtr ExpressionParser::parse_or() {
  const size_t offset = cur().offset;
  ExprPtr left = parse_and();
  while (skip_name("or")) left = binary(ExprKind::Or, std::move(left), parse_and(), offset);
  return left;
}

ExprPtr ExpressionParser::parse_and() {
  const size_t offset = cur().offset;
  ExprPtr left = parse_not();
  while (skip_name("and")) left = binary(ExprKind::And, std::move(left), parse_not(), offset);
  return left;
}

ExprPtr ExpressionParser::parse_not() {
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

ExprPtr ExpressionParser::parse_compare() {
  const size_t offset = cur().offset;
  ExprPtr expr = parse_math1();
  ExprPtr cmp;
  while (true) {
    std::string op;
    if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                  cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
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

ExprPtr ExpressionParser::parse_math1() {
  const size_t offset = cur().offset;
  ExprPtr left = parse_concat();
  while (is_op("+") || is_op("-")) {
    std::string op = cur().text;
    advance();
    left = binary(ExprKind::Binary, std::move(left), parse_concat(), offset, op);
  }
  return left;
}

ExprPtr ExpressionParser::parse_concat() {
  const size_t offset = cur().offset;
  ExprPtr left = parse_math2();
  while (skip_op("~")) left = binary(ExprKind::Binary, std::move(left), parse_math2(), offset, "~");
  return left;
}

ExprPtr ExpressionParser::parse_math2() {
  const size_t offset = cur().offset;
  ExprPtr left = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    std::string op = cur().text;
    advance();
    left = binary(ExprKind::Binary, std::move(left), parse_pow(), offset, op);
  }
  return left;
}

ExprPtr ExpressionParser::parse_pow() {
  const size_t offset = cur().offset;
  ExprPtr left = parse_unary(true);
  while (skip_op("**"))
    left = binary(ExprKind::Binary, std::move(left), parse_unary(true), offset, "**");
  return left;
}

ExprPtr ExpressionParser::parse_unary(bool with_filter) {
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

ExprPtr ExpressionParser::parse_primary() {
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

Value ExpressionParser::number_literal(const Token& t) {
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

ExprPtr ExpressionParser::parse_postfix(ExprPtr node) {
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

ExprPtr ExpressionParser::parse_filter_expr(ExprPtr node) {
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

ExprPtr ExpressionParser::parse_subscript(ExprPtr node) {
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

ExprPtr ExpressionParser::parse_subscribed() {
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

CallSpec ExpressionParser::parse_call_args() {
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

ExprPtr ExpressionParser::parse_call(ExprPtr node) {
  auto e = make(ExprKind::Call, cur().offset);
  e->call = parse_call_args();
  e->args.push_back(std::move(node));
  return deepen(std::move(e));
}

std::string ExpressionParser::dotted_name() {
  std::string name = expect_name();
  while (skip_op(".")) {
    name += '.';
    name += expect_name();
  }
  return name;
}

ExprPtr ExpressionParser::parse_filter(ExprPtr node, bool start_inline) {
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

ExprPtr ExpressionParser::parse_test(ExprPtr node) {
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

}  // namespace qcoder::jinja
