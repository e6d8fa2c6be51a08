#include "chat/py_literal.h"

#include <cmath>
#include <cstring>

#include "chat/operators.h"
#include "core/string_escapes.h"

namespace qcoder::jinja {
namespace {

// ---------------------------------------------------------------- json.loads

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  std::optional<Value> run() {
    skip_ws();
    auto v = value(0);
    if (!v) return std::nullopt;
    skip_ws();
    if (p_ != s_.size()) return std::nullopt;  // "Extra data"
    return v;
  }

 private:
  void skip_ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r'))
      ++p_;
  }
  bool lit(std::string_view w) {
    if (s_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }

  std::optional<Value> value(int depth) {
    if (depth > 500 || p_ >= s_.size()) return std::nullopt;
    const char c = s_[p_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      auto str = string();
      if (!str) return std::nullopt;
      return Value::string(std::move(*str));
    }
    if (lit("null")) return Value::none();
    if (lit("true")) return Value::boolean(true);
    if (lit("false")) return Value::boolean(false);
    if (lit("NaN")) return Value::number(std::nan(""));
    if (lit("Infinity")) return Value::number(HUGE_VAL);
    if (lit("-Infinity")) return Value::number(-HUGE_VAL);
    return number();
  }

  std::optional<Value> number() {
    const size_t start = p_;
    if (p_ < s_.size() && s_[p_] == '-') ++p_;
    if (p_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[p_]))) return std::nullopt;
    if (s_[p_] == '0')
      ++p_;
    else
      while (p_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p_]))) ++p_;
    bool is_float = false;
    if (p_ + 1 < s_.size() && s_[p_] == '.' &&
        std::isdigit(static_cast<unsigned char>(s_[p_ + 1]))) {
      is_float = true;
      p_ += 2;
      while (p_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p_]))) ++p_;
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      size_t q = p_ + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      if (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) {
        is_float = true;
        p_ = q;
        while (p_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p_]))) ++p_;
      }
    }
    const std::string text(s_.substr(start, p_ - start));
    if (is_float) return Value::number(std::strtod(text.c_str(), nullptr));
    return parse_python_int(text);
  }

  std::optional<std::string> string() {
    ++p_;  // opening quote
    std::string out;
    while (true) {
      if (p_ >= s_.size()) return std::nullopt;
      const auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        ++p_;
        return out;
      }
      if (c < 0x20) return std::nullopt;  // strict: no control characters
      if (c != '\\') {
        out += static_cast<char>(c);
        ++p_;
        continue;
      }
      if (escapes::decode_escape(s_, p_, escapes::kPythonJsonLoads, out) != escapes::Status::kOk)
        return std::nullopt;
    }
  }

  std::optional<Value> array(int depth) {
    ++p_;
    std::vector<Value> items;
    skip_ws();
    if (p_ < s_.size() && s_[p_] == ']') {
      ++p_;
      return Value::list(std::move(items));
    }
    while (true) {
      skip_ws();
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      items.push_back(std::move(*v));
      skip_ws();
      if (p_ >= s_.size()) return std::nullopt;
      if (s_[p_] == ',') {
        ++p_;
        continue;
      }
      if (s_[p_] == ']') {
        ++p_;
        return Value::list(std::move(items));
      }
      return std::nullopt;
    }
  }

  std::optional<Value> object(int depth) {
    ++p_;
    Value d = Value::dict();
    skip_ws();
    if (p_ < s_.size() && s_[p_] == '}') {
      ++p_;
      return d;
    }
    while (true) {
      skip_ws();
      if (p_ >= s_.size() || s_[p_] != '"') return std::nullopt;
      auto key = string();
      if (!key) return std::nullopt;
      skip_ws();
      if (p_ >= s_.size() || s_[p_] != ':') return std::nullopt;
      ++p_;
      skip_ws();
      auto v = value(depth + 1);
      if (!v) return std::nullopt;
      d.mutable_dict().set(Value::string(std::move(*key)), std::move(*v));
      skip_ws();
      if (p_ >= s_.size()) return std::nullopt;
      if (s_[p_] == ',') {
        ++p_;
        continue;
      }
      if (s_[p_] == '}') {
        ++p_;
        return d;
      }
      return std::nullopt;
    }
  }

  std::string_view s_;
  size_t p_ = 0;
};

// ---------------------------------------------------------------- ast.literal_eval

class LiteralReader {
 public:
  LiteralReader(std::string_view s, bool* unserializable)
      : s_(s), unserializable_(unserializable) {}

  std::optional<Value> run() {
    // literal_eval strips leading spaces and tabs, then parses in eval mode.
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t')) ++p_;
    skip(false);
    auto v = tuple_or_expr(0, false);
    if (!v) return std::nullopt;
    skip(false);
    if (p_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  // Whitespace and comments; newlines only inside brackets (or as trailing newlines at the end).
  void skip(bool in_brackets) {
    while (p_ < s_.size()) {
      const char c = s_[p_];
      if (c == ' ' || c == '\t' || c == '\f') {
        ++p_;
      } else if (c == '#') {
        while (p_ < s_.size() && s_[p_] != '\n' && s_[p_] != '\r') ++p_;
      } else if (c == '\\' && p_ + 1 < s_.size() && (s_[p_ + 1] == '\n' || s_[p_ + 1] == '\r')) {
        p_ += 2;
      } else if (c == '\n' || c == '\r') {
        if (!in_brackets) {
          // Only blank lines may follow at top level.
          size_t q = p_;
          while (q < s_.size() &&
                 (s_[q] == '\n' || s_[q] == '\r' || s_[q] == ' ' || s_[q] == '\t' || s_[q] == '\f'))
            ++q;
          if (q < s_.size() && s_[q] != '#') return;
        }
        ++p_;
      } else {
        return;
      }
    }
  }

  bool peek(char c) const { return p_ < s_.size() && s_[p_] == c; }

  // expr (',' expr)* [','] -> a tuple when there is a comma.
  std::optional<Value> tuple_or_expr(int depth, bool in_brackets) {
    auto first = expr(depth, in_brackets);
    if (!first) return std::nullopt;
    skip(in_brackets);
    if (!peek(',')) return first;
    std::vector<Value> items{std::move(*first)};
    while (peek(',')) {
      ++p_;
      skip(in_brackets);
      if (p_ >= s_.size() || peek(')') || peek(']') || peek('}') ||
          (!in_brackets && (peek('\n') || peek('\r'))))
        break;
      auto v = expr(depth, in_brackets);
      if (!v) return std::nullopt;
      items.push_back(std::move(*v));
      skip(in_brackets);
    }
    return Value::tuple(std::move(items));
  }

  // Unary +/- on numbers, and number +/- imaginary (complex).
  std::optional<Value> expr(int depth, bool in_brackets) {
    if (depth > 100) return std::nullopt;
    auto left = unary(depth, in_brackets);
    if (!left) return std::nullopt;
    skip(in_brackets);
    while ((peek('+') || peek('-')) && last_was_number_) {
      ++p_;
      skip(in_brackets);
      imaginary_ = false;
      auto right = unary(depth, in_brackets);
      if (!right || !imaginary_) return std::nullopt;  // only real +/- imaginary is a literal
      *unserializable_ = true;                         // complex: json.dumps raises
      skip(in_brackets);
    }
    return left;
  }

  std::optional<Value> unary(int depth, bool in_brackets) {
    if (peek('+') || peek('-')) {
      const bool neg = s_[p_] == '-';
      ++p_;
      skip(in_brackets);
      auto v = unary(depth + 1, in_brackets);
      if (!v || !last_was_number_) return std::nullopt;
      if (!neg) return v;
      if (v->kind() == Kind::Int) {
        if (v->as_int() == INT64_MIN) return Value::big_integer("9223372036854775808");
        return Value::integer(-v->as_int());
      }
      if (v->kind() == Kind::BigInt) {
        const std::string& d = v->bigint_digits();
        if (d == "9223372036854775808") return Value::integer(INT64_MIN);
        return Value::big_integer(d[0] == '-' ? d.substr(1) : "-" + d);
      }
      if (v->is_float()) return Value::number(-v->as_float());
      return v;
    }
    return atom(depth, in_brackets);
  }

  std::optional<Value> atom(int depth, bool in_brackets) {
    last_was_number_ = false;
    if (p_ >= s_.size()) return std::nullopt;
    const char c = s_[p_];
    if (c == '(') {
      ++p_;
      skip(true);
      if (peek(')')) {
        ++p_;
        return Value::tuple({});
      }
      auto first = expr(depth + 1, true);
      if (!first) return std::nullopt;
      skip(true);
      if (peek(')')) {
        ++p_;
        return first;  // parenthesized expression (a number keeps its unary/complex rules)
      }
      std::vector<Value> items{std::move(*first)};
      while (peek(',')) {
        ++p_;
        skip(true);
        if (peek(')')) break;
        auto v = expr(depth + 1, true);
        if (!v) return std::nullopt;
        items.push_back(std::move(*v));
        skip(true);
      }
      if (!peek(')')) return std::nullopt;
      ++p_;
      last_was_number_ = false;
      return Value::tuple(std::move(items));
    }
    if (c == '[' || c == '{') return container(depth, c);
    if (c == '"' || c == '\'') return strings(in_brackets);
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && p_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p_ + 1]))))
      return number();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const size_t start = p_;
      while (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || s_[p_] == '_'))
        ++p_;
      const std::string_view word = s_.substr(start, p_ - start);
      if (peek('\'') || peek('"')) {  // string prefix
        std::string lower;
        for (char ch : word)
          lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (lower == "r" || lower == "u" || lower == "b" || lower == "br" || lower == "rb") {
          p_ = start;
          return strings(in_brackets);
        }
        return std::nullopt;
      }
      if (word == "True") return Value::boolean(true);
      if (word == "False") return Value::boolean(false);
      if (word == "None") return Value::none();
      if (word == "set") {  // set() is the one call literal_eval accepts
        skip(in_brackets);
        if (!peek('(')) return std::nullopt;
        ++p_;
        skip(true);
        if (!peek(')')) return std::nullopt;
        ++p_;
        *unserializable_ = true;
        return Value::list();
      }
      return std::nullopt;
    }
    if (s_.substr(p_, 3) == "...") {
      p_ += 3;
      *unserializable_ = true;
      return Value::none();
    }
    return std::nullopt;
  }

  std::optional<Value> container(int depth, char open) {
    const char close = open == '[' ? ']' : '}';
    ++p_;
    skip(true);
    std::vector<Value> items;
    Value d = Value::dict();
    bool is_dict = false, is_set = false;
    bool first = true;
    while (!peek(close)) {
      if (!first) {
        if (!peek(',')) return std::nullopt;
        ++p_;
        skip(true);
        if (peek(close)) break;
      }
      first = false;
      auto k = expr(depth + 1, true);
      if (!k) return std::nullopt;
      skip(true);
      if (open == '{' && (items.empty() && !is_set) && peek(':')) is_dict = true;
      if (is_dict) {
        if (!peek(':')) return std::nullopt;
        ++p_;
        skip(true);
        auto v = expr(depth + 1, true);
        if (!v) return std::nullopt;
        if (k->is_dict() || (k->is_list() && !k->is_tuple())) return std::nullopt;  // unhashable
        if (k->is_tuple()) *unserializable_ = true;                                 // json keys
        d.mutable_dict().set(*k, std::move(*v));
        skip(true);
      } else {
        if (open == '{') {
          is_set = true;
          if (k->is_dict() || (k->is_list() && !k->is_tuple())) return std::nullopt;
        }
        items.push_back(std::move(*k));
      }
    }
    ++p_;
    last_was_number_ = false;
    if (open == '{' && !is_dict && !is_set) return d;  // {}
    if (is_dict) return d;
    if (is_set) *unserializable_ = true;
    return Value::list(std::move(items));
  }

  std::optional<Value> number() {
    last_was_number_ = true;
    imaginary_ = false;
    const size_t start = p_;
    auto digits = [&](auto is_digit) {
      const size_t s0 = p_;
      while (p_ < s_.size() && (is_digit(s_[p_]) || (s_[p_] == '_' && p_ + 1 < s_.size() &&
                                                     is_digit(s_[p_ + 1]) && p_ > s0)))
        ++p_;
      return p_ > s0;
    };
    auto dec = [](char ch) { return ch >= '0' && ch <= '9'; };
    if (s_[p_] == '0' && p_ + 1 < s_.size() && std::strchr("xXoObB", s_[p_ + 1])) {
      const char r = static_cast<char>(s_[p_ + 1] | 0x20);
      p_ += 2;
      if (peek('_')) ++p_;
      const bool ok =
          r == 'x'
              ? digits([](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0; })
          : r == 'o' ? digits([](char ch) { return ch >= '0' && ch <= '7'; })
                     : digits([](char ch) { return ch == '0' || ch == '1'; });
      if (!ok ||
          (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || s_[p_] == '_')))
        return std::nullopt;
      return parse_python_int(s_.substr(start, p_ - start), 0);
    }
    bool is_float = false;
    digits(dec);
    const std::string_view int_part = s_.substr(start, p_ - start);
    if (peek('.')) {
      is_float = true;
      ++p_;
      digits(dec);
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      size_t q = p_ + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      if (q < s_.size() && dec(s_[q])) {
        p_ = q;
        digits(dec);
        is_float = true;
      } else {
        return std::nullopt;
      }
    }
    if (p_ < s_.size() && (s_[p_] == 'j' || s_[p_] == 'J')) {
      ++p_;
      imaginary_ = true;
      *unserializable_ = true;
      return Value::number(0);
    }
    if (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || s_[p_] == '_'))
      return std::nullopt;
    std::string text;
    for (char ch : s_.substr(start, p_ - start))
      if (ch != '_') text += ch;
    if (is_float) return Value::number(std::strtod(text.c_str(), nullptr));
    // Python 3 rejects leading zeros in non-zero decimal integers ("01").
    if (int_part.size() > 1 && int_part[0] == '0' &&
        int_part.find_first_not_of("0_") != std::string_view::npos)
      return std::nullopt;
    return parse_python_int(text);
  }

  // One or more adjacent string literals (implicitly concatenated).
  std::optional<Value> strings(bool in_brackets) {
    std::string out;
    bool any_bytes = false, any_str = false;
    while (true) {
      size_t q = p_;
      bool raw = false, bytes = false;
      while (q < s_.size() && std::isalpha(static_cast<unsigned char>(s_[q]))) {
        const char ch = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[q])));
        if (ch == 'r')
          raw = true;
        else if (ch == 'b')
          bytes = true;
        else if (ch != 'u')
          return std::nullopt;
        ++q;
      }
      if (q >= s_.size() || (s_[q] != '\'' && s_[q] != '"')) break;
      const char quote = s_[q];
      const bool triple = s_.substr(q, 3) == std::string(3, quote);
      const size_t body = q + (triple ? 3 : 1);
      size_t e = body;
      while (true) {
        if (e >= s_.size()) return std::nullopt;
        if (s_[e] == '\\') {
          e += 2;
          continue;
        }
        if (!triple && (s_[e] == '\n' || s_[e] == '\r')) return std::nullopt;
        if (triple ? s_.substr(e, 3) == std::string(3, quote) : s_[e] == quote) break;
        ++e;
      }
      std::string_view text = s_.substr(body, e - body);
      if (raw) {
        out += std::string(text);
      } else {
        std::string decoded;
        if (!decode_escapes(text, bytes, decoded)) return std::nullopt;
        out += decoded;
      }
      (bytes ? any_bytes : any_str) = true;
      p_ = e + (triple ? 3 : 1);
      skip(in_brackets);
    }
    if (any_bytes && any_str) return std::nullopt;  // cannot mix bytes and str
    if (any_bytes) *unserializable_ = true;
    last_was_number_ = false;
    return Value::string(std::move(out));
  }

  static bool decode_escapes(std::string_view s, bool bytes, std::string& out) {
    const escapes::Dialect& dialect =
        bytes ? escapes::kPythonBytesLiteral : escapes::kPythonStrLiteral;
    for (size_t i = 0; i < s.size();) {
      if (s[i] != '\\') {
        if (bytes && static_cast<unsigned char>(s[i]) >= 0x80) return false;
        out += s[i++];
        continue;
      }
      if (escapes::decode_escape(s, i, dialect, out) != escapes::Status::kOk) return false;
    }
    return true;
  }

  std::string_view s_;
  size_t p_ = 0;
  bool* unserializable_;
  bool last_was_number_ = false;
  bool imaginary_ = false;
};

}  // namespace

std::optional<Value> python_json_loads(std::string_view text) {
  // json.loads accepts a str; leading/trailing JSON whitespace only.
  return JsonReader(text).run();
}

std::optional<Value> python_literal_eval(std::string_view text, bool* unserializable) {
  bool dummy = false;
  bool* flag = unserializable ? unserializable : &dummy;
  *flag = false;
  auto v = LiteralReader(text, flag).run();
  if (!v) *flag = false;
  return v;
}

}  // namespace qcoder::jinja
