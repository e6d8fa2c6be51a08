// Tokens -> syntax tree, following jinja2's parser (operator precedence, tests binding at the
// unary level, filters, tuples without parentheses, the statement set transformers enables:
// core tags plus loopcontrols and {% generation %}).
#pragma once

#include "chat/ast.h"
#include "chat/lexer.h"

namespace qcoder::jinja {

struct ParseLimits {
  int max_depth = 256;  // nesting of expressions and blocks
};

TemplateAst parse(const Source& source, const std::vector<Token>& tokens,
                  const ParseLimits& limits = {});

}  // namespace qcoder::jinja
