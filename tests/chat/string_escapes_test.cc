// The three string-escape dialects of the chat library, pinned through their public entry
// points: jinja2 string literals (unicode-escape after backslashreplace), json.loads and
// ast.literal_eval on tool-call arguments. Each keeps Python's own answer, error text included.
#include <gtest/gtest.h>

#include "chat/lexer.h"
#include "chat/py_literal.h"

namespace qcoder::jinja {
namespace {

// The decoded value of the template literal '<body>', or "error: " and the Python message.
std::string jinja(const std::string& body) {
  try {
    for (const Token& t : tokenize(Source("{{ '" + body + "' }}", false)))
      if (t.type == Tok::String) return t.text;
    return "(no string token)";
  } catch (const TemplateError& e) {
    return "error: " + e.message();
  }
}

// The message and column a template gets for a bad string literal (the literal's start).
std::string jinja_template_error(const std::string& source) {
  try {
    tokenize(Source(source, false));
  } catch (const TemplateError& e) {
    return e.type() + " at " + std::to_string(e.line()) + ":" + std::to_string(e.column()) + ": " +
           e.message();
  }
  return "(no error)";
}

std::string json_loads(const std::string& text) {
  auto v = python_json_loads(text);
  if (!v) return "(raises)";
  return v->is_string() ? v->str() : "(not a string)";
}

std::string literal(const std::string& text, bool* unserializable = nullptr) {
  auto v = python_literal_eval(text, unserializable);
  if (!v) return "(raises)";
  return v->is_string() ? v->str() : "(not a string)";
}

const std::string kFffd = "\xEF\xBF\xBD";

TEST(JinjaStringEscapes, PythonEscapes) {
  EXPECT_EQ(jinja(R"(\u00e9\x41\101\a\b\f\n\r\t\v\\\'\")"),
            "\xC3\xA9"
            "AA\a\b\f\n\r\t\v\\'\"");
  EXPECT_EQ(jinja(R"(\U0001F600)"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(jinja("a\\\nb"), "ab");
  EXPECT_EQ(jinja(R"(\777\08)"), std::string("\xC7\xBF") + '\0' + "8");
  EXPECT_EQ(jinja(R"(\q\/)"), "\\q\\/");
}

TEST(JinjaStringEscapes, SurrogatesStayUnpaired) {
  // Python keeps each surrogate as a code point of its own; UTF-8 can only carry them as is.
  EXPECT_EQ(jinja(R"(\ud83d\ude00)"), "\xED\xA0\xBD\xED\xB8\x80");
  EXPECT_EQ(jinja(R"(\udc00)"), "\xED\xB0\x80");
}

TEST(JinjaStringEscapes, NonAsciiAfterBackslashIsBackslashReplaced) {
  EXPECT_EQ(jinja("\\\xC3\xA9"), "\\xe9");
  EXPECT_EQ(jinja("\\\xE2\x98\x83!"), "\\u2603!");
  EXPECT_EQ(jinja("\\\xF0\x9F\x98\x80"), "\\U0001f600");
  EXPECT_EQ(jinja("\xC3\xA9"), "\xC3\xA9");
}

TEST(JinjaStringEscapes, Errors) {
  EXPECT_EQ(jinja(R"(\x4)"), "error: truncated \\xXX escape");
  EXPECT_EQ(jinja(R"(\x4g)"), "error: truncated \\xXX escape");
  EXPECT_EQ(jinja(R"(\u12g4)"), "error: truncated \\uXXXX escape");
  EXPECT_EQ(jinja(R"(\U1234567)"), "error: truncated \\UXXXXXXXX escape");
  EXPECT_EQ(jinja(R"(\U00110000)"), "error: illegal Unicode character");
  EXPECT_EQ(jinja(R"(\N{DASH})"), "error: malformed \\N character escape");
  // A template cannot end a literal's body with a backslash (it escapes the quote); called
  // directly, the function refuses it too.
  EXPECT_ANY_THROW(unescape_string_literal("ab\\"));
}

TEST(JinjaStringEscapes, TemplateErrorsPointAtTheLiteral) {
  EXPECT_EQ(jinja_template_error("ab\n{{ 'x\\u12' }}"),
            "TemplateSyntaxError at 2:4: truncated \\uXXXX escape");
  EXPECT_EQ(jinja_template_error("{{ \"\\U00110000\" }}"),
            "TemplateSyntaxError at 1:4: illegal Unicode character");
}

TEST(JsonLoadsEscapes, JsonEscapesAndPairs) {
  EXPECT_EQ(json_loads(R"("a\"b\\c\/d\b\f\n\r\t\u00e9")"), "a\"b\\c/d\b\f\n\r\t\xC3\xA9");
  EXPECT_EQ(json_loads(R"("\ud83d\ude00")"), "\xF0\x9F\x98\x80");
}

TEST(JsonLoadsEscapes, LoneSurrogatesBecomeReplacementCharacters) {
  EXPECT_EQ(json_loads(R"("\ud800")"), kFffd);
  EXPECT_EQ(json_loads(R"("\udc00x")"), kFffd + "x");
  EXPECT_EQ(json_loads(R"("\ud800\u0041")"), kFffd + "A");
  EXPECT_EQ(json_loads(R"("\ud800\ud83d\ude00")"), kFffd + "\xF0\x9F\x98\x80");
  EXPECT_EQ(json_loads(R"("\ude00\ud83d")"), kFffd + kFffd);
}

TEST(JsonLoadsEscapes, BadEscapesRaise) {
  EXPECT_EQ(json_loads(R"("\u12")"), "(raises)");
  EXPECT_EQ(json_loads(R"("\u12x4")"), "(raises)");
  EXPECT_EQ(json_loads(R"("\ud800\u12")"), "(raises)");
  EXPECT_EQ(json_loads(R"("\x41")"), "(raises)");
  EXPECT_EQ(json_loads(R"("\'")"), "(raises)");
  EXPECT_EQ(json_loads("\"ab\\"), "(raises)");
}

TEST(LiteralEvalEscapes, StrEscapes) {
  EXPECT_EQ(literal(R"('\u00e9\x41\101\a\b\f\n\r\t\v\\\'\"')"),
            "\xC3\xA9"
            "AA\a\b\f\n\r\t\v\\'\"");
  EXPECT_EQ(literal(R"('\U0001F600')"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(literal("'a\\\nb'"), "ab");
  EXPECT_EQ(literal(R"('\q')"), "\\q");
  EXPECT_EQ(literal("'\\\xC3\xA9'"), "\\\xC3\xA9");
  EXPECT_EQ(literal(R"(r'\n\u0041')"), "\\n\\u0041");
}

TEST(LiteralEvalEscapes, SurrogatesBecomeReplacementCharactersUnpaired) {
  EXPECT_EQ(literal(R"('\ud800')"), kFffd);
  EXPECT_EQ(literal(R"('\ud83d\ude00')"), kFffd + kFffd);
}

TEST(LiteralEvalEscapes, BadEscapesRaise) {
  EXPECT_EQ(literal(R"('\x4')"), "(raises)");
  EXPECT_EQ(literal(R"('\u12g4')"), "(raises)");
  EXPECT_EQ(literal(R"('\U00110000')"), "(raises)");
  EXPECT_EQ(literal(R"('\N{DASH}')"), "(raises)");
}

TEST(LiteralEvalEscapes, BytesLiterals) {
  bool unserializable = false;
  EXPECT_EQ(literal(R"(b'\x41\u1234\U00012345')", &unserializable), "A\\u1234\\U00012345");
  EXPECT_TRUE(unserializable);
  EXPECT_EQ(literal("b'\xC3\xA9'"), "(raises)");
  EXPECT_EQ(literal("b'\\\xC3\xA9'"), "(raises)");
}

}  // namespace
}  // namespace qcoder::jinja
