// One choice's generated tokens turned into what the client sees: streaming detokenization,
// stop strings (found across token boundaries, never shown), and, when tools are on, the
// incremental tool-call parser. Produces OpenAI `delta` objects as text becomes final.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/text_backend.h"

namespace qcoder::server {

class ChoiceStream {
 public:
  // stops: stop strings. tools: the request's tools (null = no tool parsing). forced_prefix:
  // text the prompt already ends with that belongs to the reply (a forced tool call start).
  // stop_after_first_call: end the choice at the first "</tool_call>" (parallel_tool_calls
  // false).
  ChoiceStream(const TextBackend& text, std::vector<std::string> stops,
               const nlohmann::ordered_json& tools, std::string forced_prefix,
               bool stop_after_first_call);

  // Feeds one generated token. Deltas that became final are appended to out.
  void push(int32_t token, std::vector<nlohmann::ordered_json>& out);
  // The end of generation: flushes held-back text and the parser.
  void finish(std::vector<nlohmann::ordered_json>& out);

  bool stopped() const { return stopped_; }  // a stop string (or the first tool call) ended it
  bool stopped_by_tool_call() const { return stopped_by_call_; }
  int64_t tokens() const { return tokens_; }  // tokens consumed, up to the stop
  // All the reply text (the forced prefix included), after stop strings were cut.
  const std::string& text() const { return text_; }
  bool saw_tool_call() const { return saw_tool_call_; }

 private:
  void emit(const std::string& piece, std::vector<nlohmann::ordered_json>& out);

  std::unique_ptr<TextStreamDecoder> decoder_;
  std::unique_ptr<ToolCallStream> tools_;
  std::vector<std::string> stops_;
  bool stop_after_first_call_;
  std::vector<nlohmann::ordered_json>
      pending_forced_;  // deltas of the forced prefix, sent with the first token
  std::string held_;    // decoded text not yet released (could start a stop string)
  std::string text_;
  int64_t tokens_ = 0;
  bool stopped_ = false, stopped_by_call_ = false, saw_tool_call_ = false, finished_ = false;
};

// The longest suffix of s that is a proper prefix of some stop string.
size_t stop_prefix_overlap(const std::string& s, const std::vector<std::string>& stops);

}  // namespace qcoder::server
