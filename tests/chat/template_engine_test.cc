// The template engine without the Python peer: error positions, limits, template loading and
// request normalization.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "chat/chat_template.h"
#include "test_data.h"

namespace qcoder {
namespace {

using ojson = nlohmann::ordered_json;

jinja::TemplateError error_of(const std::string& src, const ojson& vars = ojson::object(),
                              const jinja::TemplateOptions& opts = {}) {
  try {
    jinja::Template(src, opts).render(vars);
  } catch (const jinja::TemplateError& e) {
    return e;
  }
  ADD_FAILURE() << "no error from: " << src;
  return jinja::TemplateError("", "", 0, 0);
}

TEST(TemplateErrors, SyntaxErrorsHaveLineAndColumn) {
  jinja::TemplateError e = error_of("line1\n  {% if x %}\n{{ 1 + }}");
  EXPECT_EQ(e.type(), "TemplateSyntaxError");
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.column(), 8);
  e = error_of("ab\ncd {{ x $ }}");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.column(), 9);
  e = error_of("é€😀 {% foo %}");  // columns count code points
  EXPECT_EQ(e.line(), 1);
  EXPECT_EQ(e.column(), 8);
  EXPECT_EQ(e.message(), "Encountered unknown tag 'foo'.");
  e = error_of("{% for x in y %}\n{% if z %}\n");
  EXPECT_NE(e.message().find("'endif'"), std::string::npos) << e.message();
  EXPECT_NE(std::string(e.what()).find("line "), std::string::npos);
}

TEST(TemplateErrors, RuntimeErrorsPointAtTheExpression) {
  jinja::TemplateError e = error_of("a\nb {{ 'x' + 1 }}");
  EXPECT_EQ(e.type(), "TypeError");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.column(), 6);
  e = error_of("{% for m in messages %}\n  {{ m.content.upper() + m.missing.x }}\n{% endfor %}",
               ojson::parse(R"({"messages": [{"content": "a"}]})"));
  EXPECT_EQ(e.type(), "UndefinedError");
  EXPECT_EQ(e.message(), "'dict object' has no attribute 'missing'");
  EXPECT_EQ(e.line(), 2);
  e = error_of("{{ raise_exception('Conversation roles must alternate') }}");
  EXPECT_EQ(e.type(), "TemplateError");
  EXPECT_EQ(e.message(), "Conversation roles must alternate");
}

TEST(TemplateLimits, RecursionLoopsOutputAndNesting) {
  jinja::TemplateOptions opts;
  opts.render.max_call_depth = 50;
  EXPECT_EQ(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {}, opts).type(),
            "RecursionError");
  EXPECT_EQ(error_of("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", {}, opts).type(),
            "RecursionError");
  opts.render.max_loop_iterations = 1000;
  EXPECT_EQ(error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}",
                     {}, opts)
                .type(),
            "LoopLimitError");
  EXPECT_EQ(error_of("{{ range(100000)|length }}", {}, opts).type(), "LoopLimitError");
  opts.render.max_output_bytes = 1000;
  EXPECT_EQ(error_of("{% for i in range(500) %}xyz{% endfor %}", {}, opts).type(),
            "OutputLimitError");
  EXPECT_EQ(error_of("{{ 'x' * 100000 }}", {}, opts).type(), "OutputLimitError");
  // Expression nesting is bounded at parse time, value nesting at run time, namespaces cannot
  // hold themselves.
  EXPECT_EQ(error_of("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}").type(),
            "TemplateSyntaxError");
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_EQ(error_of(chain + " }}").type(), "TemplateSyntaxError");
  EXPECT_EQ(error_of("{% set ns = namespace(x=[]) %}{% for i in range(2000) %}{% set ns.x = [ns.x] "
                     "%}{% endfor %}")
                .type(),
            "RecursionError");
  EXPECT_EQ(error_of("{% set ns = namespace() %}{% set ns.me = [ns] %}").type(), "RecursionError");
}

TEST(TemplateLimits, MacrosInTheirOwnScopeDoNotLeak) {
  // A macro lives in the scope it closes over; rendering repeatedly must not leak (ASan checks).
  const jinja::Template t(
      "{% macro m(x) %}{{ x }}{% endmacro %}{% for i in range(3) %}{% macro n() %}{{ m(i) }}{% "
      "endmacro %}{{ n() }}{% endfor %}");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.render(ojson::object()), "012");
}

std::filesystem::path temp_dir(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() /
                 ("qcoder-chat-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

TEST(ChatTemplateLoad, SourcesAndPrecedence) {
  const auto dir = temp_dir("load");
  const ojson req = ojson::parse(R"({"messages": [{"role": "user", "content": "hi"}]})");
  // tokenizer_config.json string template, with its special tokens as variables
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"chat_template": "cfg:{{ eos_token }}:{{ bos_token }}", "eos_token": {"content": "<E>"}, "bos_token": null})";
  EXPECT_EQ(ChatTemplate::load(dir.string()).render(req), "cfg:<E>:");
  // chat_template.jinja wins over tokenizer_config.json
  std::ofstream(dir / "chat_template.jinja") << "file:{{ messages[0].content }}\n";
  EXPECT_EQ(ChatTemplate::load(dir.string()).render(req), "file:hi");
  // --chat-template wins over both
  std::ofstream(dir / "other.jinja") << "flag";
  EXPECT_EQ(ChatTemplate::load(dir.string(), (dir / "other.jinja").string()).render(req), "flag");
  // a list of named templates: tool_use with tools, else default, else the first
  std::filesystem::remove(dir / "chat_template.jinja");
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"chat_template": [{"name": "rag", "template": "rag"}, {"name": "default", "template": "default"}, {"name": "tool_use", "template": "tools"}]})";
  const ChatTemplate named = ChatTemplate::load(dir.string());
  EXPECT_EQ(named.render(req), "default");
  ojson with_tools = req;
  with_tools["tools"] = ojson::array();
  EXPECT_EQ(named.render(with_tools), "tools");
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"chat_template": [{"name": "a", "template": "first"}, {"name": "b", "template": "second"}]})";
  EXPECT_EQ(ChatTemplate::load(dir.string()).render(req), "first");
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "x"})";
  EXPECT_THROW(ChatTemplate::load(dir.string()), Error);
  std::filesystem::remove_all(dir);
}

TEST(ChatTemplateRender, VariablesAndNormalization) {
  const ChatTemplate t = ChatTemplate::from_string(
      "{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ enable_thinking }}|{{ extra }}|"
      "{% for m in messages %}{{ m }};{% endfor %}");
  const ojson req = ojson::parse(R"({
    "messages": [
      {"role": "user", "content": null, "name": null},
      {"role": "assistant", "content": null, "reasoning": "think", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{\"b\": 1, \"a\": [true, null]}"}},
        {"type": "function", "function": {"name": "g", "arguments": "[1, 2]"}},
        {"type": "function", "function": {"name": "h", "arguments": "not json"}}]}],
    "extra": 5, "chat_template_kwargs": {"enable_thinking": false, "extra": 6}})");
  EXPECT_EQ(
      t.render(req),
      "None|None|False|False|6|{'role': 'user', 'content': ''};"
      "{'thinking': 'think', 'role': 'assistant', 'content': '', 'reasoning': 'think', "
      "'tool_calls': ["
      "{'type': 'function', 'function': {'name': 'f', 'arguments': {'b': 1, 'a': [True, None]}}}, "
      "{'type': 'function', 'function': {'name': 'g', 'arguments': '[1, 2]'}}, "
      "{'type': 'function', 'function': {'name': 'h', 'arguments': 'not json'}}], "
      "'reasoning_content': 'think'};");
  EXPECT_THROW(t.render(ojson::parse(R"({"messages": []})")), Error);
  EXPECT_THROW(t.render(ojson::parse(R"({"messages": ["x"]})")), Error);
  EXPECT_THROW(t.render(ojson::parse(R"({"messages": [], "tools": {}})")), Error);
}

TEST(ChatTemplateRender, BigIntegersAndKeyOrderSurvive) {
  const ChatTemplate t = ChatTemplate::from_string(
      "{{ messages[0].n }} {{ messages[0].n|string }} {{ messages[0]|tojson }}");
  const ojson req = ojson::parse(R"({"messages": [{"z": 1, "a": 2, "n": 18446744073709551615}]})");
  EXPECT_EQ(
      t.render(req),
      R"(18446744073709551615 18446744073709551615 {"z": 1, "a": 2, "n": 18446744073709551615})");
}

}  // namespace
}  // namespace qcoder
