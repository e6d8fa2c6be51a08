#include "tokenizer/json_reader.h"

#include <cstring>

#include "core/error.h"
#include "core/string_escapes.h"
#include "tokenizer/unicode.h"

namespace qcoder::tok {
namespace {
constexpr int kMaxDepth = 256;  // nesting deeper than this is not a tokenizer.json

const char* escape_error(escapes::Status st) {
  switch (st) {
    case escapes::Status::kEndOfInput:
      return "unterminated string";
    case escapes::Status::kTruncatedHex:
      return "truncated \\u escape";
    case escapes::Status::kBadHex:
      return "bad \\u escape";
    case escapes::Status::kLoneHighSurrogate:
      return "lone high surrogate in a \\u escape";
    case escapes::Status::kLoneLowSurrogate:
      return "lone low surrogate in a \\u escape";
    case escapes::Status::kBadSurrogatePair:
      return "bad surrogate pair in a \\u escape";
    case escapes::Status::kOk:
    case escapes::Status::kUnknownEscape:
    case escapes::Status::kNotACodePoint:  // Python-only statuses: not returned for JSON
    case escapes::Status::kNamedEscape:
      break;
  }
  return "bad escape in a string";
}

}  // namespace

void JsonReader::fail(const std::string& what) const {
  throw Error(source_ + ": byte " + std::to_string(pos_) + ": " + what);
}

void JsonReader::skip_ws() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
    ++pos_;
  }
}

char JsonReader::peek() {
  skip_ws();
  return pos_ < text_.size() ? text_[pos_] : '\0';
}

void JsonReader::expect(char c) {
  skip_ws();
  if (pos_ >= text_.size()) fail(std::string("expected '") + c + "', found the end of the file");
  if (text_[pos_] != c) fail(std::string("expected '") + c + "'");
  ++pos_;
}

bool JsonReader::consume(char c) {
  skip_ws();
  if (pos_ < text_.size() && text_[pos_] == c) {
    ++pos_;
    return true;
  }
  return false;
}

void JsonReader::read_string(std::string& out) {
  expect('"');
  const auto* s = reinterpret_cast<const uint8_t*>(text_.data());
  const size_t n = text_.size();
  for (;;) {
    size_t run = pos_;
    while (run < n && s[run] != '"' && s[run] != '\\' && s[run] >= 0x20 && s[run] < 0x80) ++run;
    out.append(text_.data() + pos_, run - pos_);
    pos_ = run;
    if (pos_ >= n) fail("unterminated string");
    const uint8_t c = s[pos_];
    if (c == '"') {
      ++pos_;
      return;
    }
    if (c < 0x20) fail("control character in a string");
    if (c >= 0x80) {
      const size_t len = utf8_sequence_length(s + pos_, n - pos_);
      if (len == 0) fail("invalid UTF-8 in a string");
      out.append(text_.data() + pos_, len);
      pos_ += len;
      continue;
    }
    if (const escapes::Status st =
            escapes::decode_escape(text_, pos_, escapes::kTokenizerJson, out);
        st != escapes::Status::kOk)
      fail(escape_error(st));
  }
}

int64_t JsonReader::read_int() {
  skip_ws();
  const size_t start = pos_;
  bool negative = false;
  if (pos_ < text_.size() && text_[pos_] == '-') negative = true, ++pos_;
  int64_t v = 0;
  size_t digits = 0;
  while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
    if (v > (INT64_MAX - 9) / 10) fail("integer out of range");
    v = v * 10 + (text_[pos_++] - '0');
    ++digits;
  }
  if (digits == 0) pos_ = start, fail("expected an integer");
  if (digits > 1 && text_[start + negative] == '0') pos_ = start, fail("leading zero in a number");
  if (pos_ < text_.size() && (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E'))
    pos_ = start, fail("expected an integer");
  return negative ? -v : v;
}

bool JsonReader::next_key(std::string& key, bool& first) {
  if (first) {
    first = false;
    if (consume('}')) return false;
  } else {
    if (consume('}')) return false;
    expect(',');
  }
  key.clear();
  if (peek() != '"') fail("expected a string key");
  read_string(key);
  expect(':');
  return true;
}

bool JsonReader::next_element(bool& first) {
  if (first) {
    first = false;
    return !consume(']');
  }
  if (consume(']')) return false;
  expect(',');
  return true;
}

void JsonReader::skip_value(int depth) {
  if (depth > kMaxDepth) fail("nesting too deep");
  const char c = peek();
  if (c == '"') {
    std::string scratch;
    read_string(scratch);
  } else if (c == '{') {
    ++pos_;
    std::string key;
    bool first = true;
    while (next_key(key, first)) skip_value(depth + 1);
  } else if (c == '[') {
    ++pos_;
    bool first = true;
    while (next_element(first)) skip_value(depth + 1);
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    skip_number();
  } else {
    for (const char* word : {"true", "false", "null"}) {
      const size_t len = std::strlen(word);
      if (text_.substr(pos_, len) == word) {
        pos_ += len;
        return;
      }
    }
    fail(pos_ >= text_.size() ? "unexpected end of the file" : "unexpected character");
  }
}

void JsonReader::skip_number() {
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  const auto digits = [&] {
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    if (pos_ == start) fail("bad number");
    return pos_ - start;
  };
  if (text_[pos_] == '-') ++pos_;
  const size_t int_start = pos_;
  if (digits() > 1 && text_[int_start] == '0') fail("leading zero in a number");
  if (pos_ < text_.size() && text_[pos_] == '.') ++pos_, digits();
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    digits();
  }
}

std::string_view JsonReader::raw() {
  skip_ws();
  const size_t start = pos_;
  skip_value(0);
  return text_.substr(start, pos_ - start);
}

}  // namespace qcoder::tok
