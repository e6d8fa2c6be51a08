// The streaming tool-call parser: fed the text in two pieces split at every byte, byte by byte,
// and in random pieces, the concatenated deltas must equal the non-streamed parse.
#include "chat/streaming_tool_parser.h"

#include <gtest/gtest.h>

#include <random>

#include "test_data.h"

namespace qcoder {
namespace {

using json = nlohmann::json;

struct Collected {
  std::string content;
  std::vector<std::string> names, args, ids;
};

void collect(const std::vector<json>& deltas, Collected& c) {
  for (const json& d : deltas) {
    (void)d.dump();  // valid UTF-8, or dump() throws
    if (d.contains("content")) {
      ASSERT_TRUE(c.names.empty()) << "content after a tool call";
      c.content += d["content"].get<std::string>();
      continue;
    }
    ASSERT_TRUE(d.contains("tool_calls"));
    for (const json& call : d["tool_calls"]) {
      const size_t index = call["index"].get<size_t>();
      if (call.contains("id")) {
        ASSERT_EQ(index, c.names.size()) << "call indexes must be sequential";
        c.names.push_back(call["function"]["name"].get<std::string>());
        c.ids.push_back(call["id"].get<std::string>());
        c.args.emplace_back();
        EXPECT_EQ(call["type"], "function");
      }
      ASSERT_LT(index, c.args.size());
      c.args[index] += call["function"]["arguments"].get<std::string>();
    }
  }
}

Collected stream(const std::vector<std::string>& pieces, const json& tools) {
  StreamingToolCallParser p(tools);
  Collected c;
  for (const std::string& piece : pieces) collect(p.push(piece), c);
  collect(p.finish(), c);
  return c;
}

void expect_same(const Collected& c, const ParsedToolOutput& want, const std::string& what) {
  EXPECT_EQ(c.content, want.content.value_or("")) << what;
  ASSERT_EQ(c.names.size(), want.tool_calls.size()) << what;
  for (size_t i = 0; i < c.names.size(); ++i) {
    EXPECT_EQ(c.names[i], want.tool_calls[i]["function"]["name"].get<std::string>()) << what;
    EXPECT_EQ(c.args[i], want.tool_calls[i]["function"]["arguments"].get<std::string>()) << what;
  }
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "write_file", "parameters": {"type": "object", "properties": {
    "path": {"type": "string"}, "content": {"type": "string"}}}}},
  {"type": "function", "function": {"name": "typed", "parameters": {"type": "object", "properties": {
    "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"},
    "o": {"type": "object"}, "a": {"type": "array"}}}}}
])");

// Outputs beyond toolcall_public.jsonl that stress the hold-back rules.
const char* const kExtra[] = {
    "plain text only",
    "",
    "<",
    "text <tool_cal and <functio",
    "<tool_call>\n{\"name\": \"x\"}\n</tool_call>",
    "Sure:\n<tool_call>\n<function=write_file>\n<parameter=path>\n/a.txt\n</"
    "parameter>\n<parameter=content>\nline1\n\n\nline2 </par </function x <parameter "
    "y\n\n</parameter>\n</function>\n</tool_call>",
    "<tool_call>\n<function=write_file>\n<parameter=content>\nnull\n</"
    "parameter>\n<parameter=path>\nNuLl\n</parameter>\n</function>\n</tool_call>",
    "<tool_call>\n<function=write_file>\n<parameter=content>\nnullable\n</"
    "parameter>\n<parameter=path>\nnul\n</parameter>\n</function>\n</tool_call>",
    "<tool_call>\n<function=write_file>\n<parameter=content>\n\n\n\n</parameter>\n</function>\n</"
    "tool_call>",
    "<tool_call>\n<function=write_file>\n<parameter=content>\nunclosed with newlines\n\n\n\n",
    "<tool_call>\n<function=write_file>\n<parameter=content>\nunclosed at "
    "function\n\n</function>\n</tool_call>",
    "<tool_call>\n<function=write_file>\n<parameter=content>\nends at block\n\n</tool_call>",
    "<function=write_file>\n<parameter=content>\nbare unclosed\n\n\n",
    "<tool_call>\n<function=typed>\n<parameter=i>\n 42 "
    "\n</parameter>\n<parameter=n>\n1e3\n</parameter>\n<parameter=b>\nTRUE\n</"
    "parameter>\n<parameter=o>\n{\"k\": [1, {\"z\": null}]}\n</parameter>\n<parameter=a>\n1, "
    "2\n</parameter>\n</function>\n</tool_call>",
    "<tool_call>\n<function=typed>\n<parameter=s>\n😀 é 中文 \"quoted\" \\ tab\t "
    "ctrl\x01\n</parameter>\n</function>\n</tool_call>",
    "<tool_call>\n<function=write_file>\n<parameter=path>\na\n</parameter>\n</"
    "function>\n<function=typed>\n<parameter=i>\n1\n</parameter>\n</function>\n</"
    "tool_call>\n\n<tool_call>\n<function=unknown>\n<parameter=x>\n5\n</parameter>\n</function>\n</"
    "tool_call>",
    "<tool_call>\n<function=write_file",
    "<tool_call>\n<function=write_file>\n<parameter=path>\nv\n</parameter>\n</function>\n</"
    "tool_call> trailing text dropped",
    "<tool_call>\n<function=typed>\n<parameter=i>\nnot a "
    "number\n</parameter>\n</function>\n</tool_call>",
    "<tool_call><function=write_file><parameter=content>no "
    "newlines</parameter></function></tool_call>",
    "<tool_call>\n<function=write_file>\n<parameter=content>\n\r\nCRLF\r\n\n</parameter>\n</"
    "function>\n</tool_call>",
};

std::vector<std::pair<std::string, json>> all_cases() {
  std::vector<std::pair<std::string, json>> cases;
  for (const auto& row :
       testing_chat::read_jsonl(testing_chat::data_path("toolcall_public.jsonl"))) {
    if (row["id"] == "tcpub-0031") continue;  // repeated parameter: see RepeatedParameter
    cases.emplace_back(row["model_output"].get<std::string>(), json::parse(row["tools"].dump()));
  }
  for (const char* s : kExtra) cases.emplace_back(s, kTools);
  return cases;
}

TEST(StreamingToolParser, EverySplitPoint) {
  size_t runs = 0;
  for (const auto& [text, tools] : all_cases()) {
    const ParsedToolOutput want = parse_tool_calls(text, tools);
    for (size_t k = 0; k <= text.size(); ++k) {
      expect_same(stream({text.substr(0, k), text.substr(k)}, tools), want,
                  "split at " + std::to_string(k) + " of: " + text);
      ++runs;
      if (::testing::Test::HasFailure()) return;
    }
  }
  std::printf("streaming: %zu two-piece runs over %zu outputs\n", runs, all_cases().size());
}

TEST(StreamingToolParser, ByteByByteAndRandomPieces) {
  std::mt19937 rng(7);
  for (const auto& [text, tools] : all_cases()) {
    const ParsedToolOutput want = parse_tool_calls(text, tools);
    std::vector<std::string> bytes;
    for (char c : text) bytes.emplace_back(1, c);
    expect_same(stream(bytes, tools), want, "byte by byte: " + text);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<std::string> pieces;
      for (size_t i = 0; i < text.size();) {
        const size_t len = std::uniform_int_distribution<size_t>(0, 9)(rng);
        pieces.push_back(text.substr(i, len));
        i += len;
      }
      expect_same(stream(pieces, tools), want, "random pieces: " + text);
    }
  }
}

TEST(StreamingToolParser, LongStringStreamsBeforeClosingTag) {
  StreamingToolCallParser p(kTools);
  Collected c;
  collect(p.push("I'll write it.\n<tool_call>\n<function=write_file>\n<parameter=content>\n"), c);
  ASSERT_EQ(c.names.size(), 1u);
  EXPECT_EQ(c.names[0], "write_file");
  EXPECT_EQ(c.content, "I'll write it.\n");
  std::string body;
  for (int i = 0; i < 200; ++i) {
    const std::string line = "line " + std::to_string(i) + " é\n";
    body += line;
    collect(p.push(line), c);
    // Everything but the trailing newline(s) is already out, before </parameter>.
    const std::string want_prefix =
        "{\"content\": \"" + std::string(body.substr(0, body.size() - 1)).replace(0, 0, "");
    std::string escaped;
    for (char ch : body.substr(0, body.size() - 1))
      escaped += ch == '\n' ? std::string("\\n") : std::string(1, ch);
    EXPECT_EQ(c.args[0], "{\"content\": \"" + escaped) << i;
  }
  collect(p.push("</parameter>\n</function>\n</tool_call>"), c);
  collect(p.finish(), c);
  const ParsedToolOutput want =
      parse_tool_calls("I'll write it.\n<tool_call>\n<function=write_file>\n<parameter=content>\n" +
                           body + "</parameter>\n</function>\n</tool_call>",
                       kTools);
  expect_same(c, want, "long content");
  EXPECT_TRUE(p.tools_called());
}

TEST(StreamingToolParser, NameAsSoonAsComplete) {
  StreamingToolCallParser p(kTools);
  Collected c;
  collect(p.push("<tool_call>\n<function=writ"), c);
  EXPECT_TRUE(c.names.empty());
  collect(p.push("e_file>"), c);
  ASSERT_EQ(c.names.size(), 1u);
  EXPECT_EQ(c.ids[0].rfind("call_", 0), 0u);
  EXPECT_EQ(c.args[0], "{");
  collect(p.push("\n<parameter=path>\n/x\n</parameter>"), c);
  EXPECT_EQ(c.args[0], "{\"path\": \"/x\"");
}

TEST(StreamingToolParser, FailureAfterStreamedNameStillValidJson) {
  // Output cut inside a parameter name: Python's parser raises and reports no calls; the stream
  // already announced the call, so it closes the arguments as valid JSON instead.
  const std::string text =
      "x <tool_call>\n<function=write_file>\n<parameter=path>\n/a\n</parameter>\n<parameter=cont";
  const ParsedToolOutput want = parse_tool_calls(text, kTools);
  EXPECT_TRUE(want.tool_calls.empty());
  for (size_t k = 0; k <= text.size(); ++k) {
    const Collected c = stream({text.substr(0, k), text.substr(k)}, kTools);
    EXPECT_EQ(c.content, "x ");
    ASSERT_EQ(c.args.size(), 1u);
    EXPECT_EQ(json::parse(c.args[0]), json::parse(R"({"path": "/a"})"));
  }
}

TEST(StreamingToolParser, RepeatedParameterIsSemanticallyEqual) {
  // Python keeps the first position with the last value; a stream cannot take back the first
  // value, so it sends the key twice. JSON parsers keep the last value: the same object.
  const std::string text =
      "<tool_call>\n<function=write_file>\n<parameter=path>\nA\n</"
      "parameter>\n<parameter=content>\nc\n</parameter>\n"
      "<parameter=path>\nB\n</parameter>\n</function>\n</tool_call>";
  const ParsedToolOutput want = parse_tool_calls(text, kTools);
  const Collected c = stream({text}, kTools);
  ASSERT_EQ(c.args.size(), 1u);
  EXPECT_EQ(json::parse(c.args[0]),
            json::parse(want.tool_calls[0]["function"]["arguments"].get<std::string>()));
}

}  // namespace
}  // namespace qcoder
