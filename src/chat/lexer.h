// Template source -> tokens, as jinja2's lexer does it with transformers' settings
// (trim_blocks, lstrip_blocks, keep_trailing_newline=False): whitespace control is applied here,
// so the parser only sees the data that will be output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace qcoder::jinja {

// A template error with its position (1-based line and column, columns in code points).
class TemplateError : public qcoder::Error {
 public:
  TemplateError(std::string type, std::string message, int line, int column);
  const std::string& type() const { return type_; }  // "TemplateSyntaxError", "UndefinedError", ...
  const std::string& message() const { return message_; }  // the Python message
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string type_, message_;
  int line_, column_;
};

enum class Tok : uint8_t {
  Data,
  VarBegin,
  VarEnd,
  BlockBegin,
  BlockEnd,
  Name,
  String,
  Integer,
  Float,
  Op,
  Eof
};

struct Token {
  Tok type;
  std::string text;  // Data text, name, decoded string, operator, or number literal
  size_t offset;     // byte offset into the normalized source
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

class Source {
 public:
  explicit Source(std::string_view raw, bool keep_trailing_newline);
  const std::string& text() const { return text_; }
  void position(size_t offset, int& line, int& column) const;

 private:
  std::string text_;
  std::vector<size_t> line_starts_;
};

std::vector<Token> tokenize(const Source& source, const LexerOptions& options = {});

// Python's "unicode-escape" decoding of a string literal body, as jinja2 applies it.
std::string unescape_string_literal(std::string_view body);

}  // namespace qcoder::jinja
