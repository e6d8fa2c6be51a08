// What the server needs from the tokenizer and the chat template, in one place: the only
// file that knows the qcoder_tokenizer and qcoder_chat APIs is text_backend.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qcoder::server {

// Turns token ids into text as they arrive, holding back incomplete UTF-8.
class TextStreamDecoder {
 public:
  virtual ~TextStreamDecoder() = default;
  virtual std::string push(int32_t id) = 0;
  virtual std::string flush() = 0;
};

// Qwen3-Coder tool calls found in streamed text: each push returns OpenAI `delta` objects
// ({"content": ...} and/or {"tool_calls": [{index, id, type, function: {name, arguments}}]}).
class ToolCallStream {
 public:
  virtual ~ToolCallStream() = default;
  virtual std::vector<nlohmann::ordered_json> push(std::string_view text) = 0;
  virtual std::vector<nlohmann::ordered_json> finish() = 0;
};

struct ParsedToolCalls {
  std::optional<std::string> content;
  std::vector<nlohmann::ordered_json>
      tool_calls;  // [{id, type: "function", function: {name, arguments}}]
};

class TextBackend {
 public:
  virtual ~TextBackend() = default;
  // The tokenizer and chat template of a model folder (template_file overrides the folder's).
  static std::unique_ptr<TextBackend> load(const std::string& model_dir,
                                           const std::string& template_file = {});

  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special) const = 0;
  virtual std::optional<int32_t> token_id(std::string_view token) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::unique_ptr<TextStreamDecoder> stream_decoder(bool skip_special) const = 0;

  // Renders a chat request ({messages, tools?, add_generation_prompt, ...extra variables}).
  // Throws qcoder::Error on messages the template rejects.
  virtual std::string render_chat(const nlohmann::ordered_json& request) const = 0;
  virtual ParsedToolCalls parse_tool_calls(std::string_view text,
                                           const nlohmann::ordered_json& tools) const = 0;
  virtual std::unique_ptr<ToolCallStream> tool_call_stream(
      const nlohmann::ordered_json& tools) const = 0;
};

}  // namespace qcoder::server
