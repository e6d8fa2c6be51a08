#include "server/openai_params.h"

#include <gtest/gtest.h>

#include "server/api_error.h"

namespace qcoder::server {
namespace {

using json = nlohmann::ordered_json;

RequestDefaults defaults() {
  RequestDefaults d;
  d.sampling.temperature = 0.7f;
  d.sampling.top_k = 20;
  d.stop_tokens = {7};
  d.vocab_size = 1000;
  return d;
}

json chat(json extra) {
  json b = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

std::string param_of(const json& body, bool is_chat = true) {
  try {
    is_chat ? parse_chat_request(body, defaults()) : parse_completion_request(body, defaults());
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    return e.body()["error"]["param"].is_string() ? e.body()["error"]["param"].get<std::string>()
                                                  : "(none)";
  }
  return "(accepted)";
}

TEST(OpenAiParamsTest, DefaultsComeFromTheModelUnlessGiven) {
  ApiRequest r = parse_chat_request(chat(json::object()), defaults());
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 0.7f);
  EXPECT_EQ(r.gen.sampling.top_k, 20);
  EXPECT_EQ(r.gen.stop_tokens, std::vector<int32_t>{7});
  EXPECT_EQ(r.gen.max_tokens, -1);
  EXPECT_EQ(r.gen.top_logprobs, -1);
  r = parse_chat_request(chat({{"temperature", 0},
                               {"top_k", -1},
                               {"max_tokens", 5},
                               {"max_completion_tokens", 9},
                               {"seed", 3},
                               {"logit_bias", {{"12", -100}}},
                               {"logprobs", true},
                               {"top_logprobs", 2},
                               {"stop", "x"},
                               {"n", 2},
                               {"ignore_eos", true}}),
                         defaults());
  EXPECT_EQ(r.gen.sampling.temperature, 0.0f);
  EXPECT_EQ(r.gen.sampling.top_k, 0);
  EXPECT_EQ(r.gen.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_EQ(*r.gen.sampling.seed, 3u);
  ASSERT_EQ(r.gen.sampling.logit_bias.size(), 1u);
  EXPECT_EQ(r.gen.sampling.logit_bias[0].first, 12);
  EXPECT_EQ(r.gen.top_logprobs, 2);
  EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(r.n, 2);
  EXPECT_TRUE(r.gen.stop_tokens.empty());
}

TEST(OpenAiParamsTest, InvalidFieldsAreNamed) {
  EXPECT_EQ(param_of(chat({{"temperature", "1"}})), "temperature");
  EXPECT_EQ(param_of(chat({{"temperature", 2.5}})), "temperature");
  EXPECT_EQ(param_of(chat({{"top_p", -0.1}})), "top_p");
  EXPECT_EQ(param_of(chat({{"max_tokens", 1.5}})), "max_tokens");
  EXPECT_EQ(param_of(chat({{"n", 0}})), "n");
  EXPECT_EQ(param_of(chat({{"stop", 5}})), "stop");
  EXPECT_EQ(param_of(chat({{"logit_bias", {{"1000", 1}}}})), "logit_bias");
  EXPECT_EQ(param_of(chat({{"logit_bias", {{"5", 101}}}})), "logit_bias");
  EXPECT_EQ(param_of(chat({{"top_logprobs", 1}})), "top_logprobs");
  EXPECT_EQ(param_of(chat({{"response_format", {{"type", "json_schema"}}}})), "response_format");
  EXPECT_EQ(param_of(chat({{"response_format", {{"type", "text"}}}})), "(accepted)");
  EXPECT_EQ(param_of(chat({{"stream_options", {{"include_usage", true}}}})), "stream_options");
  EXPECT_EQ(param_of(chat({{"tool_choice", "required"}})), "tool_choice");
  EXPECT_EQ(param_of(chat({{"messages", json::array()}})), "messages");
  EXPECT_EQ(param_of(chat({{"messages", json::array({{{"role", "user"}, {"content", 3}}})}})),
            "messages[0].content");
  const json tools = json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  EXPECT_EQ(
      param_of(chat({{"tools", tools},
                     {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}})),
      "tool_choice");
  ApiRequest r = parse_chat_request(
      chat({{"tools", tools},
            {"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}}}),
      defaults());
  EXPECT_EQ(r.tool_choice, ToolChoice::kNamed);
  EXPECT_EQ(r.tool_name, "f");
  EXPECT_EQ(parse_chat_request(chat({{"tools", tools}}), defaults()).tool_choice,
            ToolChoice::kAuto);
  EXPECT_EQ(parse_chat_request(chat(json::object()), defaults()).tool_choice, ToolChoice::kNone);
}

TEST(OpenAiParamsTest, CompletionPrompts) {
  ApiRequest r = parse_completion_request({{"prompt", {1, 2, 3}}, {"logprobs", 3}, {"suffix", "s"}},
                                          defaults());
  ASSERT_EQ(r.prompt_ids.size(), 1u);
  EXPECT_EQ(r.prompt_ids[0], (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.gen.top_logprobs, 3);
  EXPECT_EQ(*r.suffix, "s");
  r = parse_completion_request({{"prompt", {"a", "b"}}}, defaults());
  EXPECT_EQ(r.prompt_texts.size(), 2u);
  EXPECT_EQ(param_of({{"prompt", {1, 5000}}}, false), "prompt");
  EXPECT_EQ(param_of({{"prompt", json::array()}}, false), "prompt");
  EXPECT_EQ(param_of({{"max_tokens", 3}}, false), "prompt");
  EXPECT_EQ(param_of({{"prompt", "x"}, {"echo", true}, {"suffix", "y"}}, false), "echo");
}

}  // namespace
}  // namespace qcoder::server
