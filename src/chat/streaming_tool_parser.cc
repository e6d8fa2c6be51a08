#include "chat/streaming_tool_parser.h"

#include <algorithm>

#include "chat/unicode.h"

namespace qcoder {
namespace {

constexpr const char* kToolCall = "<tool_call>";
constexpr const char* kToolCallEnd = "</tool_call>";
constexpr const char* kFunction = "<function=";
constexpr const char* kFunctionEnd = "</function>";
constexpr const char* kParam = "<parameter=";
constexpr const char* kParamEnd = "</parameter>";

// Length of the longest suffix of s (starting at or after from) that is a proper prefix of one
// of the markers.
size_t partial_marker(std::string_view s, size_t from, std::initializer_list<const char*> markers) {
  size_t best = 0;
  for (const char* m : markers) {
    const std::string_view mv(m);
    for (size_t n = std::min(mv.size() - 1, s.size() - std::min(from, s.size())); n > best; --n)
      if (s.substr(s.size() - n) == mv.substr(0, n)) {
        best = n;
        break;
      }
  }
  return best;
}

std::string escape_json_text(std::string_view s) {
  std::string q;
  jinja::append_json_string(q, s, false);
  return q.substr(1, q.size() - 2);
}

bool null_prefix(std::string_view v) {
  if (v.size() > 4) return false;
  const std::string l = jinja::unicode::lower(v);
  return std::string_view("null").substr(0, l.size()) == l;
}

}  // namespace

StreamingToolCallParser::StreamingToolCallParser(const nlohmann::json& tools) : schemas_(tools) {}

size_t StreamingToolCallParser::find_from(const char* marker, size_t from) const {
  return buf_.find(marker, from);
}

std::vector<nlohmann::json> StreamingToolCallParser::push(std::string_view text) {
  if (finished_) return {};
  buf_.append(text);
  run(false);
  return take_events();
}

std::vector<nlohmann::json> StreamingToolCallParser::finish() {
  if (finished_) return {};
  run(true);
  if (calls_ == 0) emit_content(buf_.size());  // no call after all: everything is content
  // After a failure inside a streamed call, still leave its arguments valid JSON.
  if (string_open_) emit_args("\"");
  if (call_open_) close_call();
  finished_ = true;
  return take_events();
}

void StreamingToolCallParser::run(bool at_end) {
  while (step(at_end)) {
  }
}

void StreamingToolCallParser::emit_content(size_t end) {
  if (end <= content_emitted_) return;
  events_.push_back({0, 0, buf_.substr(content_emitted_, end - content_emitted_), {}});
  content_emitted_ = end;
}

void StreamingToolCallParser::open_call(const std::string& name) {
  ++calls_;
  function_ = name;
  first_param_ = true;
  keys_.clear();
  events_.push_back({1, calls_ - 1, name, make_tool_call_id()});
  emit_args("{");
  call_open_ = true;
}

void StreamingToolCallParser::close_call() {
  emit_args("}");
  call_open_ = false;
  string_open_ = false;
}

void StreamingToolCallParser::fail() {
  // Python: any exception -> no calls, the whole output is content. Without a call streamed
  // yet finish() still gets that right; after one it cannot be taken back.
  state_ = State::Failed;
}

void StreamingToolCallParser::finish_param(size_t raw_end, bool dollar_cut, bool block_cut) {
  std::string raw = buf_.substr(value_start_, raw_end - value_start_);
  if (block_cut && !raw.empty() && raw.back() == '\n') raw.pop_back();
  if (dollar_cut && !raw.empty() && raw.back() == '\n') raw.pop_back();
  const std::string value = toolcall::strip_one_newline(raw);
  bool unserializable = false;
  const jinja::Value v = schemas_.convert(function_, param_, value, &unserializable);
  if (unserializable) {
    fail();
    return;
  }
  if (string_open_) {
    // v is the string that starts with what was streamed (held-back text guarantees it).
    const std::string& s = v.is_string() ? v.str() : value;
    const std::string rest = s.size() >= streamed_ ? s.substr(streamed_) : std::string();
    emit_args(escape_json_text(rest) + "\"");
  } else {
    std::string frag = first_param_ ? "" : ", ";
    jinja::append_json_string(frag, param_, false);
    frag += ": ";
    try {
      frag += jinja::json_dumps(v);
    } catch (const jinja::PyError&) {
      fail();
      return;
    }
    emit_args(frag);
  }
  first_param_ = false;
  keys_.push_back(param_);
  string_open_ = false;
}

void StreamingToolCallParser::stream_value() {
  if (!raw_string_) return;
  // Hold back a partial closing tag, then up to three newlines the cuts may remove, then an
  // incomplete UTF-8 sequence.
  size_t end = buf_.size() -
               partial_marker(buf_, value_start_, {kParamEnd, kParam, kFunctionEnd, kToolCallEnd});
  for (int k = 0; k < 3 && end > value_start_ && buf_[end - 1] == '\n'; ++k) --end;
  std::string_view visible = std::string_view(buf_).substr(value_start_, end - value_start_);
  if (!visible.empty() && visible.front() == '\n') visible.remove_prefix(1);
  visible = visible.substr(0, jinja::unicode::complete_prefix(visible));
  if (!string_open_) {
    if (null_prefix(visible)) return;
    std::string frag = first_param_ ? "" : ", ";
    jinja::append_json_string(frag, param_, false);
    frag += ": \"";
    emit_args(frag);
    string_open_ = true;
    streamed_ = 0;
  }
  if (visible.size() > streamed_) {
    emit_args(escape_json_text(visible.substr(streamed_)));
    streamed_ = visible.size();
  }
}

bool StreamingToolCallParser::step(bool at_end) {
  const size_t n = buf_.size();
  switch (state_) {
    case State::Content: {
      const size_t t = find_from(kToolCall, pos_), f = find_from(kFunction, pos_);
      const size_t i = std::min(t, f);
      if (i == std::string::npos) {
        if (at_end) {
          emit_content(n);
          return false;
        }
        size_t safe = n - partial_marker(buf_, content_emitted_, {kToolCall, kFunction});
        safe = content_emitted_ + jinja::unicode::complete_prefix(std::string_view(buf_).substr(
                                      content_emitted_, safe - content_emitted_));
        emit_content(safe);
        pos_ = safe;
        return false;
      }
      emit_content(i);
      if (i == t) {
        seen_block_ = true;
        state_ = State::BlockPre;
        pos_ = i + 11;
      } else {
        in_block_ = false;
        state_ = State::FuncName;
        name_start_ = pos_ = i + 10;
      }
      return true;
    }
    case State::BlockPre:
    case State::AfterFunc: {
      const size_t f = find_from(kFunction, pos_), e = find_from(kToolCallEnd, pos_);
      if (f != std::string::npos && f < e) {
        in_block_ = true;
        state_ = State::FuncName;
        name_start_ = pos_ = f + 10;
        return true;
      }
      if (e != std::string::npos) {
        state_ = State::Between;
        pos_ = e + 12;
        return true;
      }
      pos_ = std::max(pos_, n > 12 ? n - 12 : 0);
      return false;
    }
    case State::Between:
    case State::BareAfter: {
      const char* marker = state_ == State::Between ? kToolCall : kFunction;
      const size_t i = find_from(marker, pos_);
      if (i == std::string::npos) {
        pos_ = std::max(pos_, n > 12 ? n - 12 : 0);
        return false;
      }
      if (state_ == State::Between) {
        state_ = State::BlockPre;
        pos_ = i + 11;
      } else {
        state_ = State::FuncName;
        name_start_ = pos_ = i + 10;
      }
      return true;
    }
    case State::FuncName: {
      // pos_ only moves past text that holds no '>' and no complete closing tag.
      const size_t gt = buf_.find('>', pos_);
      const size_t fe = find_from(kFunctionEnd, pos_);
      const size_t be = in_block_ ? find_from(kToolCallEnd, pos_) : std::string::npos;
      if (gt == std::string::npos || std::min(fe, be) < gt) {
        if (at_end || std::min(fe, be) != std::string::npos) fail();
        if (state_ != State::Failed) pos_ = std::max(pos_, n > 12 ? n - 12 : 0);
        return at_end ? false : state_ == State::Failed;
      }
      open_call(buf_.substr(name_start_, gt - name_start_));
      state_ = State::FuncBody;
      pos_ = gt + 1;
      return true;
    }
    case State::FuncBody: {
      const size_t p = find_from(kParam, pos_), fe = find_from(kFunctionEnd, pos_);
      const size_t be = in_block_ ? find_from(kToolCallEnd, pos_) : std::string::npos;
      const size_t i = std::min({p, fe, be});
      if (i == std::string::npos) {
        if (at_end) {
          close_call();
          state_ = State::Failed;  // nothing follows the end
          return false;
        }
        pos_ = std::max(pos_, n > 12 ? n - 12 : 0);
        return false;
      }
      if (i == p) {
        state_ = State::ParamName;
        name_start_ = pos_ = p + 11;
      } else if (i == fe) {
        close_call();
        pos_ = fe + 11;
        state_ = in_block_ ? State::AfterFunc : State::BareAfter;
      } else {
        close_call();
        pos_ = be + 12;
        state_ = State::Between;
      }
      return true;
    }
    case State::ParamName: {
      const size_t gt = buf_.find('>', pos_);
      size_t term = std::min(
          {find_from(kParamEnd, pos_), find_from(kParam, pos_), find_from(kFunctionEnd, pos_)});
      if (in_block_) term = std::min(term, find_from(kToolCallEnd, pos_));
      if (gt == std::string::npos || term < gt) {
        if (at_end || term != std::string::npos) {
          fail();
          return false;
        }
        pos_ = std::max(pos_, n > 12 ? n - 12 : 0);
        return false;
      }
      param_ = buf_.substr(name_start_, gt - name_start_);
      value_start_ = pos_ = gt + 1;
      raw_string_ = schemas_.is_raw_string(function_, param_);
      string_open_ = false;
      streamed_ = 0;
      state_ = State::ParamValue;
      return true;
    }
    case State::ParamValue: {
      const size_t pe = find_from(kParamEnd, pos_), p = find_from(kParam, pos_),
                   fe = find_from(kFunctionEnd, pos_);
      const size_t be = in_block_ ? find_from(kToolCallEnd, pos_) : std::string::npos;
      const size_t i = std::min({pe, p, fe, be});
      if (i == std::string::npos) {
        if (at_end) {
          // The value runs to the end of the output: $ cuts a final newline at the function
          // level, and once more at the block level when the block is unclosed.
          finish_param(n, true, in_block_);
          if (state_ != State::Failed) close_call();
          state_ = State::Failed;
          return false;
        }
        stream_value();
        pos_ = std::max(pos_, n > 12 ? n - 12 : value_start_);
        if (pos_ < value_start_) pos_ = value_start_;
        return false;
      }
      if (i == pe || i == p) {
        finish_param(i, false, false);
        if (state_ == State::Failed) return false;
        pos_ = i == pe ? pe + 12 : p;
      } else {
        finish_param(i, true, false);  // the function string ends here: $ cut
        if (state_ == State::Failed) return false;
        pos_ = i;
      }
      state_ = State::FuncBody;
      return true;
    }
    case State::Failed:
      return false;
  }
  return false;
}

std::vector<nlohmann::json> StreamingToolCallParser::take_events() {
  std::vector<nlohmann::json> out;
  for (size_t k = 0; k < events_.size(); ++k) {
    Event& e = events_[k];
    if (e.kind == 0) {
      std::string text = e.text;
      while (k + 1 < events_.size() && events_[k + 1].kind == 0) text += events_[++k].text;
      out.push_back({{"content", text}});
    } else if (e.kind == 1) {
      nlohmann::json call = {{"index", e.index},
                             {"id", e.id},
                             {"type", "function"},
                             {"function", {{"name", e.text}, {"arguments", ""}}}};
      out.push_back({{"tool_calls", nlohmann::json::array({call})}});
    } else {
      std::string text = e.text;
      while (k + 1 < events_.size() && events_[k + 1].kind == 2 && events_[k + 1].index == e.index)
        text += events_[++k].text;
      nlohmann::json call = {{"index", e.index}, {"function", {{"arguments", text}}}};
      out.push_back({{"tool_calls", nlohmann::json::array({call})}});
    }
  }
  events_.clear();
  return out;
}

}  // namespace qcoder
