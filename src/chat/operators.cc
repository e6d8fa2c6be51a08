#include "chat/operators.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "chat/interpreter.h"
#include "chat/unicode.h"

namespace qcoder::jinja {
namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  raise("TypeError", "unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                         type_name(b) + "'");
}

bool is_intlike(const Value& v) { return v.kind() == Kind::Int || v.kind() == Kind::Bool; }
int64_t int_of(const Value& v) {
  return v.kind() == Kind::Bool ? (v.as_bool() ? 1 : 0) : v.as_int();
}

Value checked(bool overflow, int64_t r) {
  if (overflow) raise("OverflowError", "integer result outside the 64-bit range qcoder supports");
  return Value::integer(r);
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t py_mod(int64_t a, int64_t b) {
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

Value repeat(Interpreter& in, const Value& seq, int64_t n) {
  if (n <= 0)
    return seq.is_string() ? Value::string("", seq.is_markup())
                           : (seq.is_tuple() ? Value::tuple({}) : Value::list());
  if (seq.is_string()) {
    in.check_size(seq.str().size() * static_cast<size_t>(n));
    std::string out;
    out.reserve(seq.str().size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value::string(std::move(out), seq.is_markup());
  }
  in.check_size(seq.items().size() * static_cast<size_t>(n) * sizeof(Value));
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace

std::string markup_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Value binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = py_str(a);
    append_str(s, b);
    in.check_size(s.size());
    return Value::string(std::move(s));
  }
  if (a.is_undefined()) in.fail_undefined(a);
  if (b.is_undefined()) in.fail_undefined(b);
  const bool ints = is_intlike(a) && is_intlike(b);
  const bool nums = a.is_number() && b.is_number();
  if ((a.kind() == Kind::BigInt || b.kind() == Kind::BigInt) && nums && op != "/")
    raise("OverflowError", "arithmetic on integers beyond 64 bits is not supported");
  if (op == "+") {
    int64_t r = 0;
    if (ints) {
      const bool overflow = __builtin_add_overflow(int_of(a), int_of(b), &r);
      return checked(overflow, r);
    }
    if (nums) return Value::number(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) {
      const bool markup = a.is_markup() || b.is_markup();
      std::string s = markup && !a.is_markup() ? markup_escape(a.str()) : a.str();
      s += markup && !b.is_markup() ? markup_escape(b.str()) : b.str();
      in.check_size(s.size());
      return Value::string(std::move(s), markup);
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      in.check_size(items.size() * sizeof(Value));
      return a.is_tuple() ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    if (a.is_string() && !a.is_markup())
      raise("TypeError", "can only concatenate str (not \"" + type_name(b) + "\") to str");
    if (a.is_list())
      raise("TypeError", "can only concatenate " + type_name(a) + " (not \"" + type_name(b) +
                             "\") to " + type_name(a));
    unsupported("+", a, b);
  }
  if (op == "-") {
    int64_t r = 0;
    if (ints) {
      const bool overflow = __builtin_sub_overflow(int_of(a), int_of(b), &r);
      return checked(overflow, r);
    }
    if (nums) return Value::number(a.as_float() - b.as_float());
    unsupported("-", a, b);
  }
  if (op == "*") {
    int64_t r = 0;
    if (ints) {
      const bool overflow = __builtin_mul_overflow(int_of(a), int_of(b), &r);
      return checked(overflow, r);
    }
    if (nums) return Value::number(a.as_float() * b.as_float());
    if ((a.is_string() || a.is_list()) && is_intlike(b)) return repeat(in, a, int_of(b));
    if ((b.is_string() || b.is_list()) && is_intlike(a)) return repeat(in, b, int_of(a));
    if (a.is_string() && b.is_string())
      raise("TypeError", "can't multiply sequence by non-int of type 'str'");
    unsupported("*", a, b);
  }
  if (op == "/") {
    if (!nums) unsupported("/", a, b);
    if (b.as_float() == 0)
      raise("ZeroDivisionError", ints ? "division by zero" : "float division by zero");
    return Value::number(a.as_float() / b.as_float());
  }
  if (op == "//") {
    if (!nums) unsupported("//", a, b);
    if (ints) {
      if (int_of(b) == 0) raise("ZeroDivisionError", "integer division or modulo by zero");
      if (int_of(a) == INT64_MIN && int_of(b) == -1) raise("OverflowError", "integer overflow");
      return Value::integer(floor_div(int_of(a), int_of(b)));
    }
    if (b.as_float() == 0) raise("ZeroDivisionError", "float floor division by zero");
    const double x = a.as_float(), y = b.as_float();
    const double mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0 && ((y < 0) != (mod < 0))) div -= 1.0;
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    if (div == 0) floordiv = std::copysign(0.0, x / y);
    return Value::number(floordiv);
  }
  if (op == "%") {
    if (a.is_string()) {
      std::string s = percent_format(in, a.str(), b);
      return Value::string(std::move(s), a.is_markup());
    }
    if (!nums) unsupported("%", a, b);
    if (ints) {
      if (int_of(b) == 0) raise("ZeroDivisionError", "integer division or modulo by zero");
      if (int_of(b) == -1) return Value::integer(0);
      return Value::integer(py_mod(int_of(a), int_of(b)));
    }
    const double x = a.as_float(), y = b.as_float();
    if (y == 0) raise("ZeroDivisionError", "float modulo");
    double m = std::fmod(x, y);
    if (m != 0) {
      if ((y < 0) != (m < 0)) m += y;
    } else {
      m = std::copysign(0.0, y);
    }
    return Value::number(m);
  }
  if (op == "**") {
    if (!nums) unsupported("** or pow()", a, b);
    if (ints && int_of(b) >= 0) {
      int64_t base = int_of(a), e = int_of(b), r = 1;
      bool overflow = false;
      while (e > 0 && !overflow) {
        if (e & 1) overflow |= __builtin_mul_overflow(r, base, &r);
        e >>= 1;
        if (e > 0) overflow |= __builtin_mul_overflow(base, base, &base);
      }
      return checked(overflow, r);
    }
    if (a.as_float() == 0 && b.as_float() < 0)
      raise("ZeroDivisionError", "0.0 cannot be raised to a negative power");
    return Value::number(std::pow(a.as_float(), b.as_float()));
  }
  raise("TypeError", "unknown operator " + op);
}

Value unary_op(Interpreter& in, char op, const Value& a) {
  if (a.is_undefined()) in.fail_undefined(a);
  if (a.kind() == Kind::Int || a.kind() == Kind::Bool) {
    const int64_t v = int_of(a);
    if (op == '+') return Value::integer(v);
    if (v == INT64_MIN) raise("OverflowError", "integer overflow");
    return Value::integer(-v);
  }
  if (a.kind() == Kind::BigInt) {
    if (op == '+') return a;
    const std::string& d = a.bigint_digits();
    return Value::big_integer(d[0] == '-' ? d.substr(1) : "-" + d);
  }
  if (a.is_float()) return Value::number(op == '-' ? -a.as_float() : a.as_float());
  raise("TypeError", std::string("bad operand type for unary ") + op + ": '" + type_name(a) + "'");
}

bool contains(Interpreter& in, const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::String:
      if (!item.is_string())
        raise("TypeError", "'in <string>' requires string as left operand, not " + type_name(item));
      return container.str().find(item.str()) != std::string::npos;
    case Kind::List:
      for (const Value& v : container.items())
        if (py_equal(v, item)) return true;
      return false;
    case Kind::Dict:
      return container.dict_obj().find(item) != nullptr;
    case Kind::Undefined:
      return false;
    default:
      raise("TypeError", "argument of type '" + type_name(container) + "' is not iterable");
  }
}

bool compare_op(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return py_equal(a, b);
  if (op == "!=") return !py_equal(a, b);
  if (op == "in") return contains(in, b, a);
  if (op == "notin") return !contains(in, b, a);
  if (a.is_undefined()) in.fail_undefined(a);
  if (b.is_undefined()) in.fail_undefined(b);
  auto fail = [&]() -> bool {
    raise("TypeError", "'" + op + "' not supported between instances of '" + type_name(a) +
                           "' and '" + type_name(b) + "'");
  };
  const bool comparable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                          (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple());
  if (!comparable) return fail();
  if (a.is_number()) {
    const double x = a.as_float(), y = b.as_float();
    if (std::isnan(x) || std::isnan(y)) return false;
  }
  if (op == "<") return py_less(a, b);
  if (op == ">") return py_less(b, a);
  if (op == "<=") return py_less(a, b) || py_equal(a, b);
  if (op == ">=") return py_less(b, a) || py_equal(a, b);
  return fail();
}

Value slice_value(Interpreter& in, const Value& v, const std::optional<int64_t>& start_in,
                  const std::optional<int64_t>& stop_in, const std::optional<int64_t>& step_in) {
  const int64_t step = step_in.value_or(1);
  if (step == 0) raise("ValueError", "slice step cannot be zero");
  std::vector<char32_t> cps;
  int64_t len;
  if (v.is_string()) {
    cps = unicode::decode(v.str());
    len = static_cast<int64_t>(cps.size());
  } else if (v.is_list()) {
    len = static_cast<int64_t>(v.items().size());
  } else {
    raise("TypeError", "'" + type_name(v) + "' object is not subscriptable");
  }
  auto adjust = [&](std::optional<int64_t> x, int64_t dflt_pos, int64_t dflt_neg) {
    if (!x) return step > 0 ? dflt_pos : dflt_neg;
    int64_t i = *x;
    if (i < 0) {
      i += len;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= len) {
      i = step < 0 ? len - 1 : len;
    }
    return i;
  };
  const int64_t start = adjust(start_in, 0, len - 1);
  const int64_t stop = adjust(stop_in, len, -1);
  std::vector<int64_t> idx;
  if (step > 0)
    for (int64_t i = start; i < stop; i += step) idx.push_back(i);
  else
    for (int64_t i = start; i > stop; i += step) idx.push_back(i);
  if (v.is_string()) {
    std::string out;
    for (int64_t i : idx) unicode::append(out, cps[static_cast<size_t>(i)]);
    return Value::string(std::move(out), v.is_markup());
  }
  std::vector<Value> out;
  out.reserve(idx.size());
  for (int64_t i : idx) out.push_back(v.items()[static_cast<size_t>(i)]);
  (void)in;
  return v.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

std::optional<Value> parse_python_int(std::string_view text, int base) {
  std::string s = unicode::strip(text, true, true);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (i + 1 < s.size() && s[i] == '0') {
      const char r = static_cast<char>(s[i + 1] | 0x20);
      const int b = r == 'x' ? 16 : r == 'o' ? 8 : r == 'b' ? 2 : 0;
      if (b && (base == 0 || base == b)) {
        base = b;
        i += 2;
        if (i < s.size() && s[i] == '_') ++i;
      }
    }
    if (base == 0) base = 10;
  }
  std::string digits;
  bool last_underscore = true;  // no leading underscore
  for (size_t k = i; k < s.size();) {
    if (s[k] == '_') {
      if (last_underscore) return std::nullopt;
      last_underscore = true;
      ++k;
      continue;
    }
    const char32_t c = unicode::next(s, k);
    int d = unicode::decimal_value(c);
    if (d < 0) {
      if (c >= 'a' && c <= 'z')
        d = static_cast<int>(c - 'a') + 10;
      else if (c >= 'A' && c <= 'Z')
        d = static_cast<int>(c - 'A') + 10;
    }
    if (d < 0 || d >= base) return std::nullopt;
    digits += static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
    last_underscore = false;
  }
  if (digits.empty() || last_underscore) return std::nullopt;
  if (base == 10) {
    size_t nz = digits.find_first_not_of('0');
    digits = nz == std::string::npos ? "0" : digits.substr(nz);
    if (digits.size() < 19 || (digits.size() == 19 && digits <= "9223372036854775807")) {
      int64_t v = 0;
      std::from_chars(digits.data(), digits.data() + digits.size(), v);
      return Value::integer(neg ? -v : v);
    }
    return Value::big_integer((neg ? "-" : "") + digits);
  }
  uint64_t v = 0;
  auto res = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
  if (res.ec != std::errc() || v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return Value::integer(neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v));
}

std::optional<double> parse_python_float(std::string_view text) {
  std::string s = unicode::strip(text, true, true);
  std::string ascii;
  for (size_t k = 0; k < s.size();) {
    const char32_t c = unicode::next(s, k);
    const int d = unicode::decimal_value(c);
    if (d >= 0)
      ascii += static_cast<char>('0' + d);
    else if (c < 0x80)
      ascii += static_cast<char>(c);
    else
      return std::nullopt;
  }
  std::string lower;
  for (char c : ascii) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t i = 0;
  bool neg = false;
  if (i < lower.size() && (lower[i] == '+' || lower[i] == '-')) neg = lower[i++] == '-';
  const std::string rest = lower.substr(i);
  if (rest == "inf" || rest == "infinity") return neg ? -HUGE_VAL : HUGE_VAL;
  if (rest == "nan") return neg ? -std::nan("") : std::nan("");
  // digits with single underscores between digits, optional fraction and exponent
  std::string clean;
  bool seen_digit = false, seen_dot = false, seen_exp = false;
  for (size_t k = i; k < lower.size(); ++k) {
    const char c = lower[k];
    if (c == '_') {
      if (k == i || k + 1 >= lower.size() ||
          !std::isdigit(static_cast<unsigned char>(lower[k - 1])) ||
          !std::isdigit(static_cast<unsigned char>(lower[k + 1])))
        return std::nullopt;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      seen_digit = true;
    } else if (c == '.' && !seen_dot && !seen_exp) {
      seen_dot = true;
    } else if (c == 'e' && seen_digit && !seen_exp) {
      seen_exp = true;
      clean += c;
      if (k + 1 < lower.size() && (lower[k + 1] == '+' || lower[k + 1] == '-')) clean += lower[++k];
      if (k + 1 >= lower.size()) return std::nullopt;
      continue;
    } else {
      return std::nullopt;
    }
    clean += c;
  }
  if (!seen_digit) return std::nullopt;
  double v = 0;
  auto res = std::from_chars(clean.data(), clean.data() + clean.size(), v);
  if (res.ptr != clean.data() + clean.size()) {
    if (res.ec == std::errc::result_out_of_range) {
      v = std::strtod(clean.c_str(), nullptr);
    } else {
      return std::nullopt;
    }
  }
  return neg ? -v : v;
}

std::string integral_double_digits(double d) {
  const bool neg = d < 0;
  d = std::fabs(d);
  if (d < 9.0e15) {
    const auto v = static_cast<int64_t>(d);
    std::string out = neg && v ? "-" : "";
    out += std::to_string(v);
    return out;
  }
  int exp = 0;
  const double m = std::frexp(d, &exp);  // d = m * 2^exp, m in [0.5, 1)
  auto mant = static_cast<uint64_t>(std::ldexp(m, 53));
  exp -= 53;
  // decimal digits, little-endian, of mant * 2^exp (exp >= 0 here)
  std::vector<int> digits;
  for (uint64_t x = mant; x; x /= 10) digits.push_back(static_cast<int>(x % 10));
  for (int k = 0; k < exp; ++k) {
    int carry = 0;
    for (int& dg : digits) {
      const int v = dg * 2 + carry;
      dg = v % 10;
      carry = v / 10;
    }
    if (carry) digits.push_back(carry);
  }
  std::string out = neg ? "-" : "";
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) out += static_cast<char>('0' + *it);
  return out;
}

double python_round(double x, int64_t ndigits) {
  if (!std::isfinite(x) || x == 0) return x;
  if (ndigits > 308) return x;
  if (ndigits < -308) return std::copysign(0.0, x);
  // Python rounds the exact binary value: format with enough digits, then round half-even on it.
  char buf[512];
  if (ndigits >= 0) {
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(ndigits),
                  x);  // glibc: exact, round-half-even
    return std::strtod(buf, nullptr);
  }
  const double p = std::pow(10.0, static_cast<double>(-ndigits));
  const double y = x / p;
  double r = std::nearbyint(y);
  return r * p;
}

std::string percent_format(Interpreter& in, const std::string& fmt, const Value& args) {
  std::vector<Value> positional;
  const Value* mapping = nullptr;
  if (args.is_tuple())
    positional = args.items();
  else if (args.is_dict())
    mapping = &args;
  else
    positional.push_back(args);
  size_t next_arg = 0;
  std::string out;
  auto take = [&]() -> Value {
    if (next_arg >= positional.size()) raise("TypeError", "not enough arguments for format string");
    return positional[next_arg++];
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) raise("ValueError", "incomplete format");
    Value arg;
    bool have_arg = false;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) raise("ValueError", "incomplete format key");
      if (!mapping) raise("TypeError", "format requires a mapping");
      const std::string key = fmt.substr(i + 1, close - i - 1);
      const Value* v = mapping->dict_obj().find(std::string_view(key));
      if (!v) raise("KeyError", repr_string(key));
      arg = *v;
      have_arg = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::strchr("-+ #0", fmt[i])) flags += fmt[i++];
    std::string width, precision;
    if (i < fmt.size() && fmt[i] == '*') {
      width = py_str(take());
      ++i;
    }
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width += fmt[i++];
    if (i < fmt.size() && fmt[i] == '.') {
      precision = ".";
      ++i;
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])))
        precision += fmt[i++];
      if (precision == ".") precision = ".0";
    }
    while (i < fmt.size() && (fmt[i] == 'l' || fmt[i] == 'h' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) raise("ValueError", "incomplete format");
    const char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!have_arg) arg = take();
    std::string piece;
    char buf[512];
    const std::string spec = "%" + flags + width + precision;
    switch (conv) {
      case 's':
        piece = py_str(arg);
        break;
      case 'r':
      case 'a':
        piece = py_repr(arg);
        break;
      case 'd':
      case 'i':
      case 'u': {
        if (!arg.is_number())
          raise("TypeError", "%" + std::string(1, conv) +
                                 " format: a real number is required, not " + type_name(arg));
        const long long v = arg.is_float() ? static_cast<long long>(std::trunc(arg.as_float()))
                            : arg.kind() == Kind::Bool ? arg.as_bool()
                                                       : arg.as_int();
        std::snprintf(buf, sizeof buf, (spec + "lld").c_str(), v);
        piece = buf;
        break;
      }
      case 'x':
      case 'X':
      case 'o': {
        if (!arg.is_int() && arg.kind() != Kind::Bool)
          raise("TypeError", "%" + std::string(1, conv) + " format: an integer is required, not " +
                                 type_name(arg));
        const long long v = arg.kind() == Kind::Bool ? arg.as_bool() : arg.as_int();
        std::snprintf(buf, sizeof buf, (spec + "ll" + conv).c_str(), v < 0 ? -v : v);
        piece = (v < 0 ? "-" : "") + std::string(buf);
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg.is_number()) raise("TypeError", "must be real number, not " + type_name(arg));
        std::snprintf(buf, sizeof buf, (spec + conv).c_str(), arg.as_float());
        piece = buf;
        break;
      }
      case 'c':
        piece = arg.is_string() ? arg.str() : std::string(1, static_cast<char>(arg.as_int()));
        break;
      default:
        raise("ValueError", std::string("unsupported format character '") + conv + "'");
    }
    if (conv == 's' || conv == 'r' || conv == 'a') {
      if (precision.size() > 1) {
        const size_t n = std::stoul(precision.substr(1));
        piece = piece.substr(0, unicode::offset_of(piece, n));
      }
      if (!width.empty()) {
        const size_t w = std::stoul(width), len = unicode::length(piece);
        if (len < w) {
          if (flags.find('-') != std::string::npos)
            piece += std::string(w - len, ' ');
          else
            piece = std::string(w - len, ' ') + piece;
        }
      }
    }
    out += piece;
    in.check_size(out.size());
  }
  if (!mapping && next_arg < positional.size())
    raise("TypeError", "not all arguments converted during string formatting");
  return out;
}

}  // namespace qcoder::jinja
