// Qwen3-Coder's XML tool calls -> OpenAI tool_calls, with the behaviour of Qwen's
// qwen3coder_tool_parser.py (vLLM --tool-call-parser qwen3_coder, 2025):
//
//   [content]<tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n</function>\n</tool_call>
//
// Values are typed by the request's JSON schema (properties[P].type): strings raw, integers by
// Python int() (big integers exact), numbers by float() (integral values become ints), booleans
// by "true"/"false", objects and arrays by json.loads then ast.literal_eval; "null" in any case
// is null. Missing closing tags are tolerated; a literal </parameter> inside a value ends it.
// content is the text before the first call (None when empty); text after the calls is dropped.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/value.h"

namespace qcoder {

struct ParsedToolOutput {
  std::optional<std::string> content;
  // {"id": "call_<24 hex>", "type": "function", "function": {"name", "arguments": JSON string}}
  std::vector<nlohmann::json> tool_calls;
};

// tools: the request's OpenAI tools array (or null).
ParsedToolOutput parse_tool_calls(std::string_view model_output, const nlohmann::json& tools);

// "call_" + 24 random hex digits.
std::string make_tool_call_id();

namespace toolcall {

// The request's tools, for typing parameter values.
class ToolSchemas {
 public:
  explicit ToolSchemas(const nlohmann::json& tools);
  // Python's conversion of one raw value. Sets *unserializable when json.dumps would fail.
  jinja::Value convert(const std::string& function, const std::string& param,
                       const std::string& raw, bool* unserializable) const;
  // True when every value of this parameter except "null" (any case) stays the raw string.
  bool is_raw_string(const std::string& function, const std::string& param) const;

 private:
  const nlohmann::json* properties(const std::string& function) const;
  std::string param_type(const nlohmann::json& props, const std::string& param) const;
  nlohmann::json tools_;
};

// Python's value cut: one leading and one trailing "\n" removed.
std::string strip_one_newline(std::string v);

}  // namespace toolcall
}  // namespace qcoder
