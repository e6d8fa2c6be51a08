// A stand-in for the tokenizer and chat template in the C++ server tests, which run on the
// committed 512-token fixture models: one token per byte (ids 0..255); ids above decode as
// "<N>". Chat prompts are "role: content\n" lines. No tool calls are recognised.
#pragma once

#include <string>

#include "server/text_backend.h"

namespace qcoder::testing {

class FakeTextBackend final : public server::TextBackend {
 public:
  static std::string piece(int32_t id) {
    if (id < 256) return std::string(1, static_cast<char>(id));
    std::string s(1, '<');
    s.append(std::to_string(id));
    s.push_back('>');
    return s;
  }
  std::vector<int32_t> encode(std::string_view text, bool) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(std::span<const int32_t> ids, bool) const override {
    std::string s;
    for (int32_t id : ids) s += piece(id);
    return s;
  }
  std::optional<int32_t> token_id(std::string_view) const override { return std::nullopt; }
  bool is_special(int32_t) const override { return false; }
  int64_t vocab_size() const override { return 512; }
  std::unique_ptr<server::TextStreamDecoder> stream_decoder(bool) const override {
    struct D : server::TextStreamDecoder {
      std::string push(int32_t id) override { return piece(id); }
      std::string flush() override { return {}; }
    };
    return std::make_unique<D>();
  }
  std::string render_chat(const nlohmann::ordered_json& request) const override {
    std::string s;
    for (const auto& m : request["messages"])
      s += m["role"].get<std::string>() + ": " +
           (m["content"].is_string() ? m["content"].get<std::string>() : "") + "\n";
    return s + "assistant: ";
  }
  server::ParsedToolCalls parse_tool_calls(std::string_view text,
                                           const nlohmann::ordered_json&) const override {
    return {std::string(text), {}};
  }
  std::unique_ptr<server::ToolCallStream> tool_call_stream(
      const nlohmann::ordered_json&) const override {
    struct S : server::ToolCallStream {
      std::vector<nlohmann::ordered_json> push(std::string_view t) override {
        return {nlohmann::ordered_json{{"content", std::string(t)}}};
      }
      std::vector<nlohmann::ordered_json> finish() override { return {}; }
    };
    return std::make_unique<S>();
  }
};

}  // namespace qcoder::testing
