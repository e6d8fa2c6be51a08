// OpenAI request bodies (chat completions and legacy completions) parsed and validated into
// what the engine runs. Every invalid field raises ApiError 400 naming it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"

namespace qcoder::server {

// What a request gets when it does not say: generation_config.json's sampling values and
// the model's end-of-sequence tokens.
struct RequestDefaults {
  SamplingParams sampling;
  std::vector<int32_t> stop_tokens;
  int64_t vocab_size = 0;
  int max_n = 8;
};

enum class ToolChoice { kNone, kAuto, kRequired, kNamed };

struct ApiRequest {
  bool chat = false;
  std::string model;
  bool stream = false, include_usage = false;
  int n = 1;
  std::vector<std::string> stop;  // stop strings, not included in the output
  bool logprobs = false;          // chat: logprobs=true; completions: logprobs=int
  int top_logprobs = 0;
  bool echo = false;             // completions
  engine::GenerationParams gen;  // everything but the prompt

  // chat
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null or the array
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_name;  // kNamed
  bool parallel_tool_calls = true;
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();

  // completions: one entry per prompt (text or token ids)
  std::vector<std::string> prompt_texts;
  std::vector<std::vector<int32_t>> prompt_ids;
  std::optional<std::string> suffix;  // fill-in-the-middle
};

ApiRequest parse_chat_request(const nlohmann::ordered_json& body, const RequestDefaults& defaults);
ApiRequest parse_completion_request(const nlohmann::ordered_json& body,
                                    const RequestDefaults& defaults);

// Sampling defaults from DIR/generation_config.json (temperature, top_p, top_k, min_p,
// repetition_penalty, presence/frequency penalties); absent keys keep SamplingParams' values.
SamplingParams load_sampling_defaults(const std::string& model_dir);

}  // namespace qcoder::server
