#include "chat/lexer.h"

#include <algorithm>

#include "chat/unicode.h"
#include "core/string_escapes.h"

namespace qcoder::jinja {

TemplateError::TemplateError(std::string type, std::string message, int line, int column)
    : qcoder::Error("chat template line " + std::to_string(line) + ", column " +
                    std::to_string(column) + ": " + type + ": " + message),
      type_(std::move(type)),
      message_(std::move(message)),
      line_(line),
      column_(column) {}

Source::Source(std::string_view raw, bool keep_trailing_newline) {
  // jinja2 splits on \r\n, \r and \n, drops one trailing empty line, and rejoins with \n.
  text_.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      text_ += '\n';
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else {
      text_ += raw[i];
    }
  }
  if (!keep_trailing_newline && !text_.empty() && text_.back() == '\n') text_.pop_back();
  line_starts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i)
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
}

void Source::position(size_t offset, int& line, int& column) const {
  offset = std::min(offset, text_.size());
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t idx = static_cast<size_t>(it - line_starts_.begin()) - 1;
  line = static_cast<int>(idx + 1);
  column = static_cast<int>(unicode::length(
               std::string_view(text_).substr(line_starts_[idx], offset - line_starts_[idx]))) +
           1;
}

namespace {

class Lexer {
 public:
  Lexer(const Source& src, const LexerOptions& o) : src_(src), s_(src.text()), opt_(o) {}

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < s_.size()) pos = root(pos);
    out_.push_back({Tok::Eof, "", s_.size()});
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg, size_t offset) const {
    int line, col;
    src_.position(offset, line, col);
    throw TemplateError("TemplateSyntaxError", msg, line, col);
  }

  bool at(size_t p, std::string_view lit) const { return s_.compare(p, lit.size(), lit) == 0; }

  // Python's \s over code points; returns the end of the run.
  size_t skip_space(size_t p) const {
    while (p < s_.size()) {
      size_t q = p;
      if (!unicode::is_space(unicode::next(s_, q))) break;
      p = q;
    }
    return p;
  }

  static std::string rstrip(std::string_view t) { return unicode::strip(t, false, true); }

  bool all_space(std::string_view t) const {
    if (t.empty()) return false;
    for (size_t i = 0; i < t.size();)
      if (!unicode::is_space(unicode::next(t, i))) return false;
    return true;
  }

  // Applies "-" / lstrip_blocks to the text before a tag and emits it.
  void emit_text(std::string text, size_t offset, char sign, bool is_variable) {
    if (sign == '-') {
      text = rstrip(text);
    } else if (sign != '+' && opt_.lstrip_blocks && !is_variable) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && all_space(std::string_view(text).substr(l_pos)))
        text.resize(l_pos);
    }
    if (!text.empty()) out_.push_back({Tok::Data, std::move(text), offset});
  }

  size_t root(size_t pos) {
    size_t t = pos;
    while (true) {
      t = s_.find('{', t);
      if (t == std::string::npos || t + 1 >= s_.size()) {
        out_.push_back({Tok::Data, s_.substr(pos), pos});
        return s_.size();
      }
      const char c = s_[t + 1];
      if (c == '{' || c == '%' || c == '#') break;
      ++t;
    }
    const char kind = s_[t + 1];
    size_t p = t + 2;
    char sign = 0;
    if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) sign = s_[p++];
    if (kind == '%') {
      if (size_t after = raw_begin(p); after != std::string::npos) {
        emit_text(s_.substr(pos, t - pos), pos, sign, false);
        line_starting_ = false;  // the raw-begin match ends in "%}" or its trailing whitespace
        line_starting_ = after > 0 && s_[after - 1] == '\n';
        return raw_body(after);
      }
    }
    emit_text(s_.substr(pos, t - pos), pos, sign, kind == '{');
    if (kind == '#') return comment(p, t);
    out_.push_back({kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", t});
    return tag(p, kind == '%');
  }

  // "{%" sign already consumed: \s* raw \s* (-%}\s* | %}). Returns the end or npos.
  size_t raw_begin(size_t p) const {
    p = skip_space(p);
    if (!at(p, "raw")) return std::string::npos;
    p = skip_space(p + 3);
    if (at(p, "-%}")) return skip_space(p + 3);
    if (at(p, "%}")) return p + 2;
    return std::string::npos;
  }

  size_t raw_body(size_t pos) {
    for (size_t t = s_.find("{%", pos); t != std::string::npos; t = s_.find("{%", t + 1)) {
      size_t p = t + 2;
      char sign = 0;
      if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) sign = s_[p++];
      p = skip_space(p);
      if (!at(p, "endraw")) continue;
      p = skip_space(p + 6);
      size_t end;
      if (at(p, "+%}"))
        end = p + 3;
      else if (at(p, "-%}"))
        end = skip_space(p + 3);
      else if (at(p, "%}"))
        end = p + 2 + (opt_.trim_blocks && at(p + 2, "\n") ? 1 : 0);
      else
        continue;
      emit_text(s_.substr(pos, t - pos), pos, sign, false);
      line_starting_ = s_[end - 1] == '\n';
      return end;
    }
    fail("Missing end of raw directive", pos);
  }

  size_t comment(size_t p, size_t start) {
    for (size_t t = s_.find("#}", p); t != std::string::npos; t = s_.find("#}", t + 1)) {
      // The earliest of "+#}", "-#}\s*", "#}\n?" wins.
      size_t end;
      if (t > p && s_[t - 1] == '+')
        end = t + 2;
      else if (t > p && s_[t - 1] == '-')
        end = skip_space(t + 2);
      else
        end = t + 2 + (opt_.trim_blocks && at(t + 2, "\n") ? 1 : 0);
      line_starting_ = s_[end - 1] == '\n';
      return end;
    }
    fail("Missing end of comment tag", start);
  }

  size_t tag(size_t p, bool block) {
    std::vector<char> balance;
    while (true) {
      if (p >= s_.size())
        fail(block ? "unexpected end of template, expected 'end of statement block'."
                   : "unexpected end of template, expected 'end of print statement'.",
             p);
      const size_t ws_end = skip_space(p);
      if (ws_end != p) {
        p = ws_end;
        line_starting_ = s_[p - 1] == '\n';
        continue;
      }
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (block) {
          if (at(p, "+%}"))
            end = p + 3;
          else if (at(p, "-%}"))
            end = skip_space(p + 3);
          else if (at(p, "%}"))
            end = p + 2 + (opt_.trim_blocks && at(p + 2, "\n") ? 1 : 0);
        } else {
          if (at(p, "-}}"))
            end = skip_space(p + 3);
          else if (at(p, "}}"))
            end = p + 2;
        }
        if (end != std::string::npos) {
          out_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", p});
          line_starting_ = s_[end - 1] == '\n';
          return end;
        }
      }
      line_starting_ = false;
      p = token(p, balance);
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
  }
  static bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

  // (\d+_)*\d+ : returns the end, or p when there are no digits.
  size_t digits(size_t p) const {
    size_t q = p;
    while (q < s_.size() && is_digit(s_[q])) {
      while (q < s_.size() && is_digit(s_[q])) ++q;
      if (q + 1 < s_.size() && s_[q] == '_' && is_digit(s_[q + 1])) ++q;
    }
    return q;
  }

  size_t float_literal(size_t p) const {
    if (p > 0 && s_[p - 1] == '.') return p;
    size_t q = digits(p);
    if (q == p) return p;
    size_t frac = q;
    if (q < s_.size() && s_[q] == '.') {
      const size_t d = digits(q + 1);
      if (d > q + 1) frac = d;
    }
    size_t e = frac;
    if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
      size_t x = e + 1;
      if (x < s_.size() && (s_[x] == '+' || s_[x] == '-')) ++x;
      const size_t d = digits(x);
      if (d > x) return d;
    }
    return frac > q ? frac : p;
  }

  size_t integer_literal(size_t p) const {
    auto is_radix = [](char c, int base) {
      if (base == 2) return c == '0' || c == '1';
      if (base == 8) return c >= '0' && c <= '7';
      return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    };
    if (s_[p] == '0' && p + 1 < s_.size()) {
      const char r = static_cast<char>(s_[p + 1] | 0x20);
      const int base = r == 'b' ? 2 : r == 'o' ? 8 : r == 'x' ? 16 : 0;
      if (base) {
        size_t q = p + 2, last = p;
        while (q < s_.size()) {
          size_t k = q;
          if (s_[k] == '_') ++k;
          if (k < s_.size() && is_radix(s_[k], base))
            q = last = k + 1;
          else
            break;
        }
        if (last != p) return last;
      }
    }
    if (s_[p] >= '1' && s_[p] <= '9') {
      size_t q = p + 1;
      while (q < s_.size()) {
        size_t k = q;
        if (s_[k] == '_') ++k;
        if (k < s_.size() && is_digit(s_[k]))
          q = k + 1;
        else
          break;
      }
      return q;
    }
    if (s_[p] == '0') {
      size_t q = p + 1;
      while (q < s_.size()) {
        size_t k = q;
        if (s_[k] == '_') ++k;
        if (k < s_.size() && s_[k] == '0')
          q = k + 1;
        else
          break;
      }
      return q;
    }
    return p;
  }

  size_t token(size_t p, std::vector<char>& balance) {
    const char c = s_[p];
    if (is_digit(c)) {
      if (size_t e = float_literal(p); e > p) {
        out_.push_back({Tok::Float, s_.substr(p, e - p), p});
        return e;
      }
      size_t e = integer_literal(p);
      out_.push_back({Tok::Integer, s_.substr(p, e - p), p});
      return e;
    }
    if (is_name_start(c)) {
      size_t e = p;
      while (e < s_.size() && is_name_char(s_[e])) ++e;
      out_.push_back({Tok::Name, s_.substr(p, e - p), p});
      return e;
    }
    if (c == '\'' || c == '"') {
      size_t q = p + 1;
      while (q < s_.size() && s_[q] != c) q += s_[q] == '\\' ? 2 : 1;
      if (q >= s_.size())
        fail("unexpected char '" + std::string(1, c) + "' at " + std::to_string(p), p);
      std::string value;
      try {
        value = unescape_string_literal(std::string_view(s_).substr(p + 1, q - p - 1));
      } catch (const PyErrorLike& e) {
        fail(e.message, p);
      }
      out_.push_back({Tok::String, std::move(value), p});
      return q + 1;
    }
    static const char* const kOps2[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kOps2)
      if (at(p, op)) {
        out_.push_back({Tok::Op, op, p});
        return p + 2;
      }
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) != std::string_view::npos) {
      if (c == '(' || c == '[' || c == '{') {
        balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      } else if (c == ')' || c == ']' || c == '}') {
        if (balance.empty()) fail(std::string("unexpected '") + c + "'", p);
        const char want = balance.back();
        balance.pop_back();
        if (want != c) fail(std::string("unexpected '") + c + "', expected '" + want + "'", p);
      }
      out_.push_back({Tok::Op, std::string(1, c), p});
      return p + 1;
    }
    size_t q = p;
    const char32_t cp = unicode::next(s_, q);
    std::string ch;
    unicode::append(ch, cp);
    fail("unexpected char " + repr_char(ch) + " at " +
             std::to_string(unicode::length(std::string_view(s_).substr(0, p))),
         p);
  }

 public:
  struct PyErrorLike {
    std::string message;
  };

 private:
  static std::string repr_char(const std::string& ch) {
    if (ch == "'") return "\"'\"";
    if (ch == "\\") return "'\\\\'";
    return "'" + ch + "'";
  }

  const Source& src_;
  const std::string& s_;
  LexerOptions opt_;
  std::vector<Token> out_;
  bool line_starting_ = true;
};

// The Python message for an escape decode_escape refused; escape is the character after the
// backslash.
std::string escape_error(escapes::Status st, char escape) {
  switch (st) {
    case escapes::Status::kEndOfInput:
      return "\\ at end of string";
    case escapes::Status::kTruncatedHex:
    case escapes::Status::kBadHex:
      return escape == 'x'   ? "truncated \\xXX escape"
             : escape == 'u' ? "truncated \\uXXXX escape"
                             : "truncated \\UXXXXXXXX escape";
    case escapes::Status::kNotACodePoint:
      return "illegal Unicode character";
    case escapes::Status::kNamedEscape:
      return "malformed \\N character escape";
    case escapes::Status::kOk:
    case escapes::Status::kUnknownEscape:  // JSON and kReject statuses: not returned here
    case escapes::Status::kLoneHighSurrogate:
    case escapes::Status::kLoneLowSurrogate:
    case escapes::Status::kBadSurrogatePair:
      break;
  }
  return "invalid escape";
}

}  // namespace

std::string unescape_string_literal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '\\') {
      const size_t start = i;
      unicode::next(s, i);
      out.append(s.substr(start, i - start));
      continue;
    }
    if (i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80) {
      // jinja2 decodes value.encode("ascii", "backslashreplace"): the character after the
      // backslash became its own escape text, which the "\\" before it leaves undecoded.
      ++i;
      unicode::append_python_escape(out, unicode::next(s, i));
      continue;
    }
    const char escape = i + 1 < s.size() ? s[i + 1] : '\0';
    if (const escapes::Status st = escapes::decode_escape(s, i, escapes::kJinjaStringLiteral, out);
        st != escapes::Status::kOk)
      throw Lexer::PyErrorLike{escape_error(st, escape)};
  }
  return out;
}

std::vector<Token> tokenize(const Source& source, const LexerOptions& options) {
  return Lexer(source, options).run();
}

}  // namespace qcoder::jinja
