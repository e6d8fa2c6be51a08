#include "core/string_escapes.h"

#include "core/utf8.h"

namespace qcoder::escapes {
namespace {

bool is_high_surrogate(char32_t c) { return c >= 0xD800 && c <= 0xDBFF; }
bool is_low_surrogate(char32_t c) { return c >= 0xDC00 && c <= 0xDFFF; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// n hex digits at s[i]; i ends past them, or where decode_escape says an error leaves it.
Status read_hex(std::string_view s, size_t& i, size_t n, char32_t& value) {
  if (i + n > s.size()) return Status::kTruncatedHex;
  value = 0;
  for (size_t k = 0; k < n; ++k) {
    const int h = hex_value(s[i++]);
    if (h < 0) return Status::kBadHex;
    value = value * 16 + static_cast<char32_t>(h);
  }
  return Status::kOk;
}

// The byte a one-character escape stands for, or -1 when c is not one in this syntax.
int single_char_escape(char c, Syntax syntax) {
  const bool python = syntax == Syntax::kPython;
  switch (c) {
    case '"':
    case '\\':
      return c;
    case '/':
      return python ? -1 : '/';
    case '\'':
      return python ? '\'' : -1;
    case 'a':
      return python ? '\a' : -1;
    case 'v':
      return python ? '\v' : -1;
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return -1;
  }
}

// A code point that is not half of a JSON pair.
Status append_code_point(char32_t cp, LoneSurrogate policy, std::string& out) {
  if (cp >= 0xD800 && cp <= 0xDFFF) {
    if (policy == LoneSurrogate::kReject)
      return is_low_surrogate(cp) ? Status::kLoneLowSurrogate : Status::kLoneHighSurrogate;
    if (policy == LoneSurrogate::kReplace) cp = 0xFFFD;
  }
  append_utf8(out, cp);
  return Status::kOk;
}

// JSON's \uXXXX, i at the first hex digit. A high surrogate takes the \uDCxx after it when there
// is one; kReject reads the next escape as that half and fails when it is not.
Status json_unicode(std::string_view s, size_t& i, LoneSurrogate policy, std::string& out) {
  char32_t cp;
  if (Status st = read_hex(s, i, 4, cp); st != Status::kOk) return st;
  if (is_high_surrogate(cp)) {
    const bool u_follows = i + 2 <= s.size() && s[i] == '\\' && s[i + 1] == 'u';
    size_t j = i + 2;
    char32_t low = 0;
    if (policy == LoneSurrogate::kReject) {
      if (!u_follows) return Status::kLoneHighSurrogate;
      i = j;
      if (Status st = read_hex(s, i, 4, low); st != Status::kOk) return st;
      if (!is_low_surrogate(low)) return Status::kBadSurrogatePair;
    } else if (u_follows && read_hex(s, j, 4, low) == Status::kOk && is_low_surrogate(low)) {
      i = j;
    } else {
      return append_code_point(cp, policy, out);
    }
    append_utf8(out, 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00));
    return Status::kOk;
  }
  return append_code_point(cp, policy, out);
}

// Python's escapes after the one-character ones, i past the escape character c.
Status python_escape(char c, std::string_view s, size_t& i, const Dialect& dialect,
                     std::string& out) {
  if (c == '\n') return Status::kOk;  // a line continuation
  if (c == 'x' || (!dialect.bytes && (c == 'u' || c == 'U'))) {
    char32_t cp;
    if (Status st = read_hex(s, i, c == 'x' ? 2 : c == 'u' ? 4 : 8, cp); st != Status::kOk)
      return st;
    if (cp > 0x10FFFF) return Status::kNotACodePoint;
    return append_code_point(cp, dialect.lone_surrogate, out);
  }
  if (c == 'N') return Status::kNamedEscape;
  if (c >= '0' && c <= '7') {  // up to three octal digits, at most U+01FF
    char32_t cp = static_cast<char32_t>(c - '0');
    for (int k = 0; k < 2 && i < s.size() && s[i] >= '0' && s[i] <= '7'; ++k)
      cp = cp * 8 + static_cast<char32_t>(s[i++] - '0');
    append_utf8(out, cp);
    return Status::kOk;
  }
  out += '\\';
  out += c;
  return Status::kOk;
}

}  // namespace

Status decode_escape(std::string_view s, size_t& i, const Dialect& dialect, std::string& out) {
  ++i;  // the backslash
  if (i >= s.size()) return Status::kEndOfInput;
  const char c = s[i++];
  if (const int byte = single_char_escape(c, dialect.syntax); byte >= 0) {
    out += static_cast<char>(byte);
    return Status::kOk;
  }
  if (dialect.syntax == Syntax::kPython) return python_escape(c, s, i, dialect, out);
  if (c == 'u') return json_unicode(s, i, dialect.lone_surrogate, out);
  return Status::kUnknownEscape;
}

}  // namespace qcoder::escapes
