// libFuzzer target: arbitrary model output through the whole and the streaming tool-call
// parsers (the first byte picks the piece size). Every delta must serialize as JSON, and when
// the output has no tool call at all, the streamed content must be the whole output.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "chat/streaming_tool_parser.h"
#include "chat/tool_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 8 * 1024) return 0;  // debug+ASan json is slow; 8 KiB keeps runs fast
  static const nlohmann::json tools = nlohmann::json::parse(R"([
    {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
      "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"},
      "o": {"type": "object"}, "a": {"type": "array"}, "l": {"type": ["integer", "null"]}}}}}])");
  const size_t piece = 1 + data[0] % 16;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const qcoder::ParsedToolOutput whole = qcoder::parse_tool_calls(text, tools);
  qcoder::StreamingToolCallParser parser(tools);
  std::string content;
  size_t calls = 0;
  auto take = [&](const std::vector<nlohmann::json>& deltas) {
    for (const nlohmann::json& d : deltas) {
      (void)d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (d.contains("content")) content += d["content"].get<std::string>();
      for (const auto& c : d.value("tool_calls", nlohmann::json::array()))
        calls += c.contains("id");
    }
  };
  for (size_t i = 0; i < text.size(); i += piece) take(parser.push(text.substr(i, piece)));
  take(parser.finish());
  if (calls == 0 && whole.tool_calls.empty() && content != text) std::abort();
  return 0;
}
