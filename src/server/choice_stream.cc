#include "server/choice_stream.h"

#include <algorithm>

namespace qcoder::server {

namespace {
constexpr const char* kToolCallEnd = "</tool_call>";
}

size_t stop_prefix_overlap(const std::string& s, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const std::string& stop : stops)
    for (size_t k = std::min(s.size(), stop.size() - 1); k > best; --k)
      if (s.compare(s.size() - k, k, stop, 0, k) == 0) {
        best = k;
        break;
      }
  return best;
}

ChoiceStream::ChoiceStream(const TextBackend& text, std::vector<std::string> stops,
                           const nlohmann::ordered_json& tools, std::string forced_prefix,
                           bool stop_after_first_call)
    : decoder_(text.stream_decoder(false)),
      stops_(std::move(stops)),
      stop_after_first_call_(stop_after_first_call && !tools.is_null()) {
  if (!tools.is_null()) tools_ = text.tool_call_stream(tools);
  if (stop_after_first_call_) stops_.push_back(kToolCallEnd);  // kept in the text, see push()
  if (!forced_prefix.empty()) {
    std::vector<nlohmann::ordered_json>
        ignored;  // deltas of the forced prefix are sent by the caller's parse
    emit(forced_prefix, ignored);
    pending_forced_ = std::move(ignored);
  }
}

void ChoiceStream::emit(const std::string& piece, std::vector<nlohmann::ordered_json>& out) {
  if (piece.empty()) return;
  text_ += piece;
  if (piece.find("<tool_call>") != std::string::npos ||
      text_.find("<tool_call>") != std::string::npos)
    saw_tool_call_ = true;
  if (tools_) {
    for (auto& d : tools_->push(piece)) out.push_back(std::move(d));
  } else {
    out.push_back({{"content", piece}});
  }
}

void ChoiceStream::push(int32_t token, std::vector<nlohmann::ordered_json>& out) {
  if (stopped_ || finished_) return;
  ++tokens_;
  if (!pending_forced_.empty()) {
    for (auto& d : pending_forced_) out.push_back(std::move(d));
    pending_forced_.clear();
  }
  held_ += decoder_->push(token);
  // The earliest stop string in what is held ends the choice.
  size_t at = std::string::npos, len = 0;
  bool tool_end = false;
  for (const std::string& s : stops_) {
    const size_t p = held_.find(s);
    if (p != std::string::npos && (p < at || (p == at && s.size() > len))) {
      at = p;
      len = s.size();
      tool_end = s == kToolCallEnd && stop_after_first_call_;
    }
  }
  if (at != std::string::npos) {
    // A closing </tool_call> that ends the first call stays in the text (the parser needs it).
    emit(held_.substr(0, tool_end ? at + len : at), out);
    held_.clear();
    stopped_ = true;
    stopped_by_call_ = tool_end;
    std::vector<nlohmann::ordered_json> rest;
    if (tools_) rest = tools_->finish();
    for (auto& d : rest) out.push_back(std::move(d));
    finished_ = true;
    return;
  }
  const size_t keep = stop_prefix_overlap(held_, stops_);
  emit(held_.substr(0, held_.size() - keep), out);
  held_.erase(0, held_.size() - keep);
}

void ChoiceStream::finish(std::vector<nlohmann::ordered_json>& out) {
  if (finished_) return;
  finished_ = true;
  if (!pending_forced_.empty()) {
    for (auto& d : pending_forced_) out.push_back(std::move(d));
    pending_forced_.clear();
  }
  held_ += decoder_->flush();
  emit(held_, out);
  held_.clear();
  if (tools_)
    for (auto& d : tools_->finish()) out.push_back(std::move(d));
}

}  // namespace qcoder::server
