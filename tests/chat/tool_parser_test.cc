// The non-streaming Qwen3-Coder tool-call parser against toolcall_public.jsonl (vLLM's classic
// qwen3_coder parser), plus value-typing cases beyond it.
#include "chat/tool_parser.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace qcoder {
namespace {

using json = nlohmann::json;

TEST(ToolParser, PublicCases) {
  int total = 0, exact = 0;
  for (const auto& row :
       testing_chat::read_jsonl(testing_chat::data_path("toolcall_public.jsonl"))) {
    ++total;
    const json tools = json::parse(row["tools"].dump());
    const ParsedToolOutput got = parse_tool_calls(row["model_output"].get<std::string>(), tools);
    const auto& want = row["expected"];
    const std::string id =
        row["id"].get<std::string>() + " (" + row["note"].get<std::string>() + ")";
    bool ok = true;
    if (want["content"].is_null()) {
      ok &= !got.content.has_value();
      EXPECT_FALSE(got.content.has_value()) << id << ": " << *got.content;
    } else {
      ok &= got.content == want["content"].get<std::string>();
      EXPECT_EQ(got.content.value_or("<None>"), want["content"].get<std::string>()) << id;
    }
    EXPECT_EQ(!got.tool_calls.empty(), want["tools_called"].get<bool>()) << id;
    ASSERT_EQ(got.tool_calls.size(), want["tool_calls"].size()) << id;
    for (size_t i = 0; i < got.tool_calls.size(); ++i) {
      const json& g = got.tool_calls[i];
      const auto& w = want["tool_calls"][i];
      EXPECT_EQ(g["type"], "function");
      EXPECT_EQ(g["id"].get<std::string>().rfind("call_", 0), 0u);
      EXPECT_EQ(g["id"].get<std::string>().size(), 29u);
      EXPECT_EQ(g["function"]["name"].get<std::string>(), w["function"]["name"].get<std::string>())
          << id;
      // Byte-identical to Python's json.dumps(ensure_ascii=False).
      EXPECT_EQ(g["function"]["arguments"].get<std::string>(),
                w["function"]["arguments"].get<std::string>())
          << id;
      ok &= g["function"]["arguments"] == w["function"]["arguments"] &&
            g["function"]["name"] == w["function"]["name"];
      EXPECT_EQ(json::parse(g["function"]["arguments"].get<std::string>()),
                json::parse(w["function"]["arguments_obj"].dump()))
          << id;
    }
    exact += ok;
  }
  std::printf("toolcall_public.jsonl: %d/%d exact\n", exact, total);
  EXPECT_EQ(exact, total);
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
    "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"},
    "o": {"type": "object"}, "a": {"type": "array"}, "u": {"type": "UINT64"}, "l": {"type": ["integer", "null"]},
    "d": {"type": "double"}, "any": {"anyOf": [{"type": "integer"}]}, "e": {"enum": ["x"], "type": "enum"}}}}}
])");

std::string args_of(const std::string& param, const std::string& value) {
  const std::string out = "<tool_call>\n<function=f>\n<parameter=" + param + ">\n" + value +
                          "\n</parameter>\n</function>\n</tool_call>";
  const ParsedToolOutput r = parse_tool_calls(out, kTools);
  if (r.tool_calls.size() != 1) return "<no call>";
  return r.tool_calls[0]["function"]["arguments"].get<std::string>();
}

TEST(ToolParser, PythonIntSemantics) {
  EXPECT_EQ(args_of("i", " 42 "), R"({"i": 42})");
  EXPECT_EQ(args_of("i", "1_000"), R"({"i": 1000})");
  EXPECT_EQ(args_of("i", "\u0664\u0662"), R"({"i": 42})");  // Arabic-Indic digits
  EXPECT_EQ(args_of("i", "-0"), R"({"i": 0})");
  EXPECT_EQ(args_of("i", "4.0"), R"({"i": "4.0"})");
  EXPECT_EQ(args_of("i", "123456789012345678901234567890"),
            R"({"i": 123456789012345678901234567890})");
  EXPECT_EQ(args_of("u", "18446744073709551616"), R"({"u": 18446744073709551616})");
  EXPECT_EQ(args_of("i", "1__0"), R"({"i": "1__0"})");
}

TEST(ToolParser, PythonFloatSemantics) {
  EXPECT_EQ(args_of("n", "3.0"), R"({"n": 3})");
  EXPECT_EQ(args_of("n", "1e3"), R"({"n": 1000})");
  EXPECT_EQ(args_of("n", "2.5"), R"({"n": 2.5})");
  EXPECT_EQ(
      args_of("n", "1e300"),
      "{\"n\": " +
          std::string("1000000000000000052504760255204420248704468581108159154915854115511802457988"
                      "9081957863713750804478640437044438328838781769425232353604305756447921847867"
                      "0698284838720092657580373783023379478809005936895323497079994508111903896764"
                      "0880074652742780142494579258788820056842838115669472196386865459400540160") +
          "}");  // int(1e300), exact
  EXPECT_EQ(args_of("n", "inf"), R"({"n": "inf"})");
  EXPECT_EQ(args_of("n", "nan"), R"({"n": "nan"})");
  EXPECT_EQ(args_of("n", "0.1"), R"({"n": 0.1})");
  EXPECT_EQ(args_of("n", "1e-7"), R"({"n": 1e-07})");
  EXPECT_EQ(args_of("n", "-0.0"), R"({"n": 0})");
}

TEST(ToolParser, BooleansNullsStrings) {
  EXPECT_EQ(args_of("b", "True"), R"({"b": true})");
  EXPECT_EQ(args_of("b", " true"), R"({"b": false})");
  EXPECT_EQ(args_of("b", "yes"), R"({"b": false})");
  EXPECT_EQ(args_of("s", "NuLl"), R"({"s": null})");
  EXPECT_EQ(args_of("s", "null "), R"({"s": "null "})");
  EXPECT_EQ(args_of("e", "x"), R"({"e": "x"})");
  EXPECT_EQ(args_of("s", "tab\there \"q\" \\ \u0001 \u2028 é"),
            "{\"s\": \"tab\\there \\\"q\\\" \\\\ \\u0001 \u2028 é\"}");
  EXPECT_EQ(args_of("any", "5"), R"({"any": "5"})");
}

TEST(ToolParser, ObjectsArraysAndLiterals) {
  EXPECT_EQ(args_of("o", R"({"k": [1, 2.0, null, true], "k": "dup", "z": 1e400})"),
            R"({"o": {"k": "dup", "z": Infinity}})");
  EXPECT_EQ(args_of("o", "{'a': 1, 'b': (1, 2), 'c': None, 'd': 'x' 'y'}"),
            R"({"o": {"a": 1, "b": [1, 2], "c": null, "d": "xy"}})");
  EXPECT_EQ(args_of("a", "1, 2, 3"), R"({"a": [1, 2, 3]})");
  EXPECT_EQ(args_of("a", "[1, 2"), R"({"a": "[1, 2"})");
  EXPECT_EQ(args_of("a", "[0x10, -5, +2.5, 1_0]"), R"({"a": [16, -5, 2.5, 10]})");
  EXPECT_EQ(args_of("l", "7"), R"({"l": 7})");  // "['integer', 'null']": ast.literal_eval
  EXPECT_EQ(args_of("l", "seven"), R"({"l": "seven"})");
  EXPECT_EQ(args_of("d", "'quoted'"), R"({"d": "quoted"})");
  EXPECT_EQ(args_of("a", "[1, # comment\n 2]"), R"({"a": [1, 2]})");
  EXPECT_EQ(args_of("a", "[01]"), R"({"a": "[01]"})");
}

TEST(ToolParser, UnserializableLiteralFailsTheWholeParse) {
  // ast.literal_eval gives a set / bytes / complex: json.dumps raises, so no calls at all.
  for (const char* v : {"{1, 2}", "b'x'", "1+2j", "set()"}) {
    const std::string out = "Hi<tool_call>\n<function=f>\n<parameter=a>\n" + std::string(v) +
                            "\n</parameter>\n</function>\n</tool_call>";
    const ParsedToolOutput r = parse_tool_calls(out, kTools);
    EXPECT_TRUE(r.tool_calls.empty()) << v;
    EXPECT_EQ(r.content, out) << v;
  }
}

TEST(ToolParser, StructuralQuirks) {
  // A name without '>' makes the whole parse fail.
  ParsedToolOutput r = parse_tool_calls("x<tool_call>\n<function=f", kTools);
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.content, "x<tool_call>\n<function=f");
  // Literal </parameter> inside a value truncates it.
  r = parse_tool_calls("<function=f>\n<parameter=s>\na</parameter>b\n</parameter>\n</function>",
                       kTools);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0]["function"]["arguments"], R"({"s": "a"})");
  // Unclosed everything with trailing newlines: $ matches before the final "\n" at each level.
  r = parse_tool_calls("<tool_call>\n<function=f>\n<parameter=s>\nv\n\n\n", kTools);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0]["function"]["arguments"], R"({"s": "v"})");
  // Blocks without functions while <function= appears elsewhere: no calls.
  r = parse_tool_calls("<tool_call>{}</tool_call> <function=f>\n</function>", kTools);
  EXPECT_TRUE(r.tool_calls.empty());
  // No tools at all: raw strings.
  r = parse_tool_calls("<function=g>\n<parameter=x>\n1\n</parameter>\n</function>", nullptr);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0]["function"]["arguments"], R"({"x": "1"})");
}

}  // namespace
}  // namespace qcoder
