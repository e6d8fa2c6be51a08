// A compiled Jinja2 template with transformers' chat-template environment: trim_blocks,
// lstrip_blocks, loopcontrols, {% generation %}, tojson as json.dumps, raise_exception,
// strftime_now, and the sandbox's immutable containers.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/interpreter.h"
#include "chat/lexer.h"
#include "chat/parser.h"
#include "chat/value.h"

namespace qcoder::jinja {

struct TemplateOptions {
  ParseLimits parse;
  RenderLimits render;
};

class Template {
 public:
  // Throws TemplateError (TemplateSyntaxError / TemplateAssertionError) with line and column.
  explicit Template(std::string_view source, const TemplateOptions& options = {});

  // Throws TemplateError for runtime errors (UndefinedError, TypeError, TemplateError from
  // raise_exception, ...) with the line and column of the failing expression or statement.
  std::string render(const std::vector<std::pair<std::string, Value>>& vars) const;
  // vars: a JSON object; each key becomes a template variable.
  std::string render(const nlohmann::ordered_json& vars) const;

  const std::string& source() const { return source_->text(); }

 private:
  std::shared_ptr<Source> source_;
  std::shared_ptr<TemplateAst> ast_;
  TemplateOptions options_;
};

}  // namespace qcoder::jinja
