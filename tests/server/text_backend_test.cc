// The real tokenizer, chat template and tool-call parsers behind the server's text pipeline:
// a Qwen3-Coder tool call pushed token by token through ChoiceStream comes out as OpenAI
// deltas (content, the call's name, argument fragments) that add up to the whole-text parse.
#include "server/text_backend.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "server/choice_stream.h"

namespace qcoder::server {
namespace {

using json = nlohmann::ordered_json;

// The committed, byte-identical copy of ../shared/data/qwen3-coder (tokenizer and template).
std::string shared_model_files() {
  return std::string(QCODER_SOURCE_DIR) + "/tests/tokenizer/fixtures/qwen3-coder";
}

TEST(TextBackendTest, StreamedToolCallDeltasAddUpToTheWholeParse) {
  auto text = TextBackend::load(shared_model_files());
  const json tools =
      json::parse(R"([{"type": "function", "function": {"name": "write_file", "parameters": {
      "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"},
      "mode": {"type": "integer"}}}}}])");
  const std::string reply =
      "I'll write "
      "it.\n<tool_call>\n<function=write_file>\n<parameter=path>\nsrc/a.py\n</parameter>\n"
      "<parameter=content>\ndef f(x):\n    return x < 3  # "
      "\"é\"\n</parameter>\n<parameter=mode>\n420\n"
      "</parameter>\n</function>\n</tool_call>";
  const std::vector<int32_t> ids = text->encode(reply, true);
  ASSERT_NE(std::find(ids.begin(), ids.end(), 151657), ids.end());  // <tool_call> is one token

  ChoiceStream cs(*text, {}, tools, "", false);
  std::vector<json> deltas;
  for (int32_t id : ids) cs.push(id, deltas);
  cs.finish(deltas);
  EXPECT_EQ(cs.text(), reply);

  std::string content, args, name, id;
  int headers = 0, fragments = 0;
  for (const json& d : deltas) {
    if (d.contains("content")) content += d["content"].get<std::string>();
    if (!d.contains("tool_calls")) continue;
    const json& tc = d["tool_calls"][0];
    EXPECT_EQ(tc["index"], 0);
    if (tc.contains("id")) {
      ++headers;
      id = tc["id"];
      name = tc["function"]["name"];
      EXPECT_EQ(tc["function"]["arguments"], "");
    } else {
      ++fragments;
      args += tc["function"]["arguments"].get<std::string>();
    }
  }
  const ParsedToolCalls whole = text->parse_tool_calls(reply, tools);
  ASSERT_EQ(whole.tool_calls.size(), 1u);
  EXPECT_EQ(content, "I'll write it.\n");
  EXPECT_EQ(*whole.content, content);
  EXPECT_EQ(headers, 1);
  EXPECT_EQ(name, "write_file");
  EXPECT_EQ(id.rfind("call_", 0), 0u);
  EXPECT_GE(fragments, 3);  // the arguments arrive in pieces, not at the end
  EXPECT_EQ(json::parse(args),
            json::parse(whole.tool_calls[0]["function"]["arguments"].get<std::string>()));
  EXPECT_EQ(json::parse(args)["mode"], 420);
}

TEST(TextBackendTest, ChatTemplateAndTokenizer) {
  auto text = TextBackend::load(shared_model_files());
  const json req = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
                    {"add_generation_prompt", true}};
  const std::string prompt = text->render_chat(req);
  EXPECT_EQ(prompt, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(text->encode(prompt, true).front(), 151644);
  EXPECT_EQ(text->token_id("<|fim_middle|>"), 151660);
  EXPECT_EQ(text->decode(text->encode("héllo wörld", true), false), "héllo wörld");
}

}  // namespace
}  // namespace qcoder::server
