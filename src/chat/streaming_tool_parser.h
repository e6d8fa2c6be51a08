// Incremental Qwen3-Coder tool-call parsing for streamed output: text pushed in pieces split
// anywhere comes out as OpenAI chat.completion.chunk deltas:
//
//   {"content": "..."}                                             text before the first call
//   {"tool_calls": [{"index": i, "id": "call_...", "type": "function",
//                    "function": {"name": N, "arguments": ""}}]}    as soon as <function=N> is
//                    complete
//   {"tool_calls": [{"index": i, "function": {"arguments": "..."}}]} argument JSON fragments
//
// Arguments are emitted as each parameter arrives; a string-typed value (a file's content)
// streams while it arrives, holding back only what could still be a stripped trailing newline,
// a partial closing tag, a literal null, or an incomplete UTF-8 sequence. Concatenated, the
// content and argument fragments equal parse_tool_calls() on the whole text, except in the
// documented corner cases (docs/CHAT.md): a repeated parameter name, a bare <function= before a
// later <tool_call>, and a parse failure after a call was already streamed.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "chat/tool_parser.h"

namespace qcoder {

class StreamingToolCallParser {
 public:
  explicit StreamingToolCallParser(const nlohmann::json& tools);
  std::vector<nlohmann::json> push(std::string_view text);
  std::vector<nlohmann::json> finish();
  bool tools_called() const { return calls_ > 0; }  // finish_reason "tool_calls"

 private:
  enum class State {
    Content,
    BlockPre,
    Between,
    FuncName,
    FuncBody,
    ParamName,
    ParamValue,
    AfterFunc,
    BareAfter,
    Failed
  };
  struct Event {
    int kind;  // 0 content, 1 header, 2 arguments
    int index;
    std::string text, id;
  };

  void run(bool at_end);
  bool step(bool at_end);  // one state transition; false when it needs more text
  void emit_content(size_t end);
  void emit_args(const std::string& text) { events_.push_back({2, calls_ - 1, text, {}}); }
  void open_call(const std::string& name);
  void close_call();
  void fail();
  void finish_param(size_t raw_end, bool dollar_cuts, bool block_cut);
  void stream_value();
  size_t find_from(const char* marker, size_t from) const;
  std::vector<nlohmann::json> take_events();

  toolcall::ToolSchemas schemas_;
  std::string buf_;
  State state_ = State::Content;
  size_t pos_ = 0;              // where the current state scans from
  size_t content_emitted_ = 0;  // bytes of buf_ emitted as content
  bool in_block_ = false;       // the current function is inside <tool_call>
  bool seen_block_ = false;
  bool finished_ = false;
  int calls_ = 0;
  std::string function_;
  // current parameter
  std::string param_;
  size_t name_start_ = 0, value_start_ = 0;
  bool first_param_ = true, raw_string_ = false, string_open_ = false, call_open_ = false;
  size_t streamed_ = 0;  // bytes of the value already emitted inside the JSON string
  std::vector<std::string> keys_;
  std::vector<Event> events_;
};

}  // namespace qcoder
