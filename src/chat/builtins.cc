#include "chat/builtins.h"

#include <ctime>

#include "chat/operators.h"
#include "chat/unicode.h"

namespace qcoder::jinja {

Value native(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  auto f = std::make_shared<NativeFunction>();
  f->name = std::move(name);
  f->fn = std::move(fn);
  return Value::callable(f);
}

const Value* arg(const CallArgs& a, size_t i, const char* name) {
  if (i < a.args.size()) return &a.args[i];
  return name ? a.kwarg(name) : nullptr;
}
int64_t int_arg(const CallArgs& a, size_t i, const char* name, int64_t dflt) {
  const Value* v = arg(a, i, name);
  if (!v || v->is_none()) return dflt;
  if (v->kind() == Kind::Bool) return v->as_bool();
  if (v->kind() != Kind::Int)
    raise("TypeError", "'" + type_name(*v) + "' object cannot be interpreted as an integer");
  return v->as_int();
}
bool bool_arg(const CallArgs& a, size_t i, const char* name, bool dflt) {
  const Value* v = arg(a, i, name);
  return v ? truthy(*v) : dflt;
}
std::string str_arg(const CallArgs& a, size_t i, const char* name, const std::string& dflt) {
  const Value* v = arg(a, i, name);
  return v && !v->is_none() ? py_str(*v) : dflt;
}

std::string object_type_repr(const Value& v) {
  switch (v.kind()) {
    case Kind::None:
      return "None";
    case Kind::String:
      return v.is_markup() ? "markupsafe.Markup object" : "str object";
    case Kind::Namespace:
      return "transformers.utils.chat_template_utils.TemplateNamespace object";
    case Kind::Loop:
      return "jinja2.runtime.LoopContext object";
    case Kind::Callable:
      return "jinja2.runtime.Macro object";
    case Kind::Undefined:
      return "jinja2.runtime.Undefined object";
    default:
      return type_name(v) + " object";
  }
}

namespace {

Value bind(const Value& self, const std::string& name) {
  auto m = std::make_shared<BoundMethod>();
  m->name = name;
  m->self = self;
  return Value::callable(m);
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute " + repr_string(name) + " of " +
                              repr_string(type_name(obj)) + " object is unsafe.",
                          "SecurityError");
}

bool one_of(const std::string& name, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

}  // namespace

std::optional<Value> builtin_attribute(const Value& obj, const std::string& name) {
  if (name.size() > 4 && name.rfind("__", 0) == 0 && name.compare(name.size() - 2, 2, "__") == 0)
    return unsafe(obj, name);
  switch (obj.kind()) {
    case Kind::String:
      if (one_of(name,
                 {"startswith", "endswith",  "split",    "rsplit",  "splitlines",   "strip",
                  "lstrip",     "rstrip",    "replace",  "lower",   "upper",        "title",
                  "capitalize", "casefold",  "swapcase", "find",    "rfind",        "index",
                  "rindex",     "count",     "join",     "format",  "isdigit",      "isnumeric",
                  "isdecimal",  "isalpha",   "isalnum",  "isspace", "islower",      "isupper",
                  "zfill",      "center",    "ljust",    "rjust",   "removeprefix", "removesuffix",
                  "partition",  "rpartition"}))
        return bind(obj, name);
      return std::nullopt;
    case Kind::Dict:
      if (one_of(name, {"get", "items", "keys", "values", "copy"})) return bind(obj, name);
      if (one_of(name, {"clear", "pop", "popitem", "setdefault", "update", "fromkeys"}))
        return unsafe(obj, name);
      return std::nullopt;
    case Kind::List:
      if (one_of(name, {"index", "count"}) || (!obj.is_tuple() && name == "copy"))
        return bind(obj, name);
      if (!obj.is_tuple() &&
          one_of(name, {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"}))
        return unsafe(obj, name);
      return std::nullopt;
    case Kind::Loop: {
      const LoopObject& l = obj.loop_obj();
      const auto n = static_cast<int64_t>(l.items.size()), i = static_cast<int64_t>(l.index0);
      if (name == "index") return Value::integer(i + 1);
      if (name == "index0") return Value::integer(i);
      if (name == "revindex") return Value::integer(n - i);
      if (name == "revindex0") return Value::integer(n - i - 1);
      if (name == "first") return Value::boolean(i == 0);
      if (name == "last") return Value::boolean(i == n - 1);
      if (name == "length") return Value::integer(n);
      if (name == "depth") return Value::integer(l.depth0 + 1);
      if (name == "depth0") return Value::integer(l.depth0);
      if (name == "previtem")
        return i > 0 ? l.items[static_cast<size_t>(i - 1)]
                     : Value::undefined("there is no previous item");
      if (name == "nextitem")
        return i + 1 < n ? l.items[static_cast<size_t>(i + 1)]
                         : Value::undefined("there is no next item");
      if (name == "cycle" || name == "changed") return bind(obj, name);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

Value BoundMethod::call(Interpreter& in, CallArgs& args) {
  return call_method(in, self, name, args);
}

namespace {

void no_kwargs(const CallArgs& a, const std::string& name) {
  if (!a.kwargs.empty()) raise("TypeError", name + "() takes no keyword arguments");
}

const std::string& need_str(const Value* v, const std::string& what) {
  if (!v) raise("TypeError", what + " missing required argument");
  if (!v->is_string()) raise("TypeError", "must be str, not " + type_name(*v));
  return v->str();
}

std::vector<std::string> split_whitespace(const std::string& s, int64_t maxsplit, bool from_right) {
  const auto cps = unicode::decode(s);
  std::vector<std::pair<size_t, size_t>> words;  // code point ranges
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && unicode::is_space(cps[i])) ++i;
    if (i >= cps.size()) break;
    size_t j = i;
    while (j < cps.size() && !unicode::is_space(cps[j])) ++j;
    words.emplace_back(i, j);
    i = j;
  }
  auto text = [&](size_t b, size_t e) {
    return unicode::encode(std::vector<char32_t>(cps.begin() + static_cast<std::ptrdiff_t>(b),
                                                 cps.begin() + static_cast<std::ptrdiff_t>(e)));
  };
  std::vector<std::string> out;
  if (maxsplit < 0 || static_cast<size_t>(maxsplit) >= words.size()) {
    for (auto [b, e] : words) out.push_back(text(b, e));
    return out;
  }
  const auto m = static_cast<size_t>(maxsplit);
  if (!from_right) {
    for (size_t k = 0; k < m; ++k) out.push_back(text(words[k].first, words[k].second));
    out.push_back(text(words[m].first, cps.size()));  // the rest, trailing whitespace kept
  } else {
    const size_t keep = words.size() - m;
    out.push_back(text(0, words[keep - 1].second));
    for (size_t k = keep; k < words.size(); ++k)
      out.push_back(text(words[k].first, words[k].second));
  }
  return out;
}

std::vector<std::string> split_sep(const std::string& s, const std::string& sep, int64_t maxsplit,
                                   bool from_right) {
  if (sep.empty()) raise("ValueError", "empty separator");
  std::vector<std::string> out;
  if (!from_right) {
    size_t pos = 0;
    int64_t n = 0;
    while (maxsplit < 0 || n < maxsplit) {
      const size_t f = s.find(sep, pos);
      if (f == std::string::npos) break;
      out.push_back(s.substr(pos, f - pos));
      pos = f + sep.size();
      ++n;
    }
    out.push_back(s.substr(pos));
    return out;
  }
  size_t end = s.size();
  int64_t n = 0;
  std::vector<std::string> rev;
  while (maxsplit < 0 || n < maxsplit) {
    if (end < sep.size()) break;
    const size_t f = s.rfind(sep, end - sep.size());
    if (f == std::string::npos) break;
    rev.push_back(s.substr(f + sep.size(), end - f - sep.size()));
    end = f;
    ++n;
  }
  rev.push_back(s.substr(0, end));
  return std::vector<std::string>(rev.rbegin(), rev.rend());
}

Value str_list(const std::vector<std::string>& parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (const std::string& p : parts) items.push_back(Value::string(p));
  return Value::list(std::move(items));
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

// Python's [start:end] bounds (code points) for find/count/startswith.
std::pair<size_t, size_t> bounds(const std::string& s, const CallArgs& a, size_t first) {
  const auto n = static_cast<int64_t>(unicode::length(s));
  auto fix = [n](int64_t x) { return x < 0 ? std::max<int64_t>(0, x + n) : std::min(x, n); };
  const int64_t b = fix(int_arg(a, first, nullptr, 0));
  const int64_t e = fix(int_arg(a, first + 1, nullptr, n));
  return {unicode::offset_of(s, static_cast<size_t>(b)),
          unicode::offset_of(s, static_cast<size_t>(std::max(b, e)))};
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, int align) {
  const auto len = static_cast<int64_t>(unicode::length(s));
  if (width <= len) return s;
  const int64_t total = width - len;
  int64_t left = align < 0 ? 0 : align > 0 ? total : total / 2 + (total & width & 1);
  if (align == 0) left = total / 2 + ((total & width) & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < total - left; ++i) out += fill;
  return out;
}

std::string fill_char(const CallArgs& a, size_t i) {
  const Value* f = arg(a, i, nullptr);
  if (!f) return " ";
  if (!f->is_string() || unicode::length(f->str()) != 1)
    raise("TypeError", "The fill character must be exactly one character long");
  return f->str();
}

std::string str_format(Interpreter& in, const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '{') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
        out += '{';
        ++i;
        continue;
      }
      const size_t close = fmt.find('}', i);
      if (close == std::string::npos)
        raise("ValueError", "Single '{' encountered in format string");
      std::string field = fmt.substr(i + 1, close - i - 1), spec, conv;
      if (size_t colon = field.find(':'); colon != std::string::npos) {
        spec = field.substr(colon + 1);
        field.resize(colon);
      }
      if (size_t bang = field.find('!'); bang != std::string::npos) {
        conv = field.substr(bang + 1);
        field.resize(bang);
      }
      Value v;
      if (field.empty()) {
        if (auto_index >= a.args.size())
          raise("IndexError", "Replacement index " + std::to_string(auto_index) +
                                  " out of range for positional args tuple");
        v = a.args[auto_index++];
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        const size_t k = std::stoul(field);
        if (k >= a.args.size())
          raise("IndexError",
                "Replacement index " + field + " out of range for positional args tuple");
        v = a.args[k];
      } else {
        const Value* kv = a.kwarg(field);
        if (!kv) raise("KeyError", repr_string(field));
        v = *kv;
      }
      std::string text = conv == "r" ? py_repr(v) : py_str(v);
      if (!spec.empty()) {
        // [[fill]align][width][.precision][type] for the common cases
        std::string fill = " ";
        int align = v.is_number() ? 1 : -1;
        size_t p = 0;
        if (spec.size() >= 2 && std::string("<>^").find(spec[1]) != std::string::npos) {
          fill = spec.substr(0, 1);
          align = spec[1] == '<' ? -1 : spec[1] == '>' ? 1 : 0;
          p = 2;
        } else if (!spec.empty() && std::string("<>^").find(spec[0]) != std::string::npos) {
          align = spec[0] == '<' ? -1 : spec[0] == '>' ? 1 : 0;
          p = 1;
        }
        int64_t width = 0;
        while (p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p])))
          width = width * 10 + (spec[p++] - '0');
        if (p < spec.size() && spec[p] == '.') {
          ++p;
          int prec = 0;
          while (p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p])))
            prec = prec * 10 + (spec[p++] - '0');
          const char type = p < spec.size() ? spec[p] : 'g';
          if (v.is_number() && (type == 'f' || type == 'e' || type == 'g' || type == '%')) {
            char buf[512];
            std::snprintf(
                buf, sizeof buf,
                (std::string("%.") + std::to_string(prec) + (type == '%' ? 'f' : type)).c_str(),
                type == '%' ? v.as_float() * 100 : v.as_float());
            text = buf;
            if (type == '%') text += '%';
          } else if (v.is_string()) {
            text = text.substr(0, unicode::offset_of(text, static_cast<size_t>(prec)));
          }
        } else if (p < spec.size() && spec[p] == 'd' && !v.is_int() && v.kind() != Kind::Bool) {
          raise("ValueError", "Unknown format code 'd' for object of type '" + type_name(v) + "'");
        }
        text = pad(text, width, fill, align);
      }
      out += text;
      i = close;
    } else if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}')
        ++i;
      else
        raise("ValueError", "Single '}' encountered in format string");
      out += '}';
    } else {
      out += c;
    }
    in.check_size(out.size());
  }
  return out;
}

Value string_method(Interpreter& in, const Value& self, const std::string& m, CallArgs& a) {
  const std::string& s = self.str();
  if (m == "startswith" || m == "endswith") {
    const Value* p = arg(a, 0, nullptr);
    if (!p) raise("TypeError", m + "() takes at least 1 argument (0 given)");
    auto [b, e] = bounds(s, a, 1);
    const std::string_view sub = std::string_view(s).substr(b, e - b);
    auto test = [&](const Value& x) {
      if (!x.is_string())
        raise("TypeError", m + " first arg must be str or a tuple of str, not " + type_name(x));
      const std::string& t = x.str();
      if (t.size() > sub.size()) return false;
      return m == "startswith" ? sub.compare(0, t.size(), t) == 0
                               : sub.compare(sub.size() - t.size(), t.size(), t) == 0;
    };
    if (p->is_tuple()) {
      for (const Value& x : p->items())
        if (test(x)) return Value::boolean(true);
      return Value::boolean(false);
    }
    return Value::boolean(test(*p));
  }
  if (m == "split" || m == "rsplit") {
    const Value* sep = arg(a, 0, "sep");
    const int64_t maxsplit = int_arg(a, 1, "maxsplit", -1);
    if (!sep || sep->is_none()) return str_list(split_whitespace(s, maxsplit, m == "rsplit"));
    return str_list(split_sep(s, need_str(sep, m), maxsplit, m == "rsplit"));
  }
  if (m == "splitlines") {
    const bool keepends = bool_arg(a, 0, "keepends", false);
    std::vector<std::string> lines;
    const auto cps = unicode::decode(s);
    std::vector<char32_t> cur;
    for (size_t i = 0; i < cps.size(); ++i) {
      if (is_line_break(cps[i])) {
        std::vector<char32_t> line = cur;
        size_t brk = 1;
        if (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') brk = 2;
        if (keepends)
          for (size_t k = 0; k < brk; ++k) line.push_back(cps[i + k]);
        lines.push_back(unicode::encode(line));
        cur.clear();
        i += brk - 1;
      } else {
        cur.push_back(cps[i]);
      }
    }
    if (!cur.empty()) lines.push_back(unicode::encode(cur));
    return str_list(lines);
  }
  if (m == "strip" || m == "lstrip" || m == "rstrip") {
    const Value* chars = arg(a, 0, nullptr);
    const bool left = m != "rstrip", right = m != "lstrip";
    if (!chars || chars->is_none()) return Value::string(unicode::strip(s, left, right));
    return Value::string(unicode::strip_chars(s, need_str(chars, m), left, right));
  }
  if (m == "replace") {
    const std::string& old = need_str(arg(a, 0, nullptr), m);
    const std::string& repl = need_str(arg(a, 1, nullptr), m);
    int64_t count = int_arg(a, 2, "count", -1);
    std::string out;
    if (old.empty()) {
      // Python inserts the replacement between every code point (and at both ends).
      size_t i = 0;
      int64_t n = 0;
      while (true) {
        if (count >= 0 && n >= count) {
          out += s.substr(i);
          break;
        }
        out += repl;
        ++n;
        if (i >= s.size()) break;
        const size_t b = i;
        unicode::next(s, i);
        out += s.substr(b, i - b);
      }
    } else {
      size_t pos = 0;
      int64_t n = 0;
      while (count < 0 || n < count) {
        const size_t f = s.find(old, pos);
        if (f == std::string::npos) break;
        out += s.substr(pos, f - pos) + repl;
        pos = f + old.size();
        ++n;
        in.check_size(out.size());
      }
      out += s.substr(pos);
    }
    in.check_size(out.size());
    return Value::string(std::move(out));
  }
  if (m == "lower" || m == "casefold") return Value::string(unicode::lower(s));
  if (m == "upper") return Value::string(unicode::upper(s));
  if (m == "title") return Value::string(unicode::title(s));
  if (m == "capitalize") return Value::string(unicode::capitalize(s));
  if (m == "swapcase") {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      const char32_t c = unicode::next(s, i);
      std::string l, u;
      unicode::append_lower(l, c);
      unicode::append_upper(u, c);
      std::string self_c;
      unicode::append(self_c, c);
      out += self_c != l ? l : u;
    }
    return Value::string(out);
  }
  if (m == "find" || m == "rfind" || m == "index" || m == "rindex" || m == "count") {
    const std::string& sub = need_str(arg(a, 0, nullptr), m);
    auto [b, e] = bounds(s, a, 1);
    const std::string_view hay = std::string_view(s).substr(b, e - b);
    if (m == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(unicode::length(hay)) + 1);
      int64_t n = 0;
      for (size_t p = hay.find(sub); p != std::string_view::npos; p = hay.find(sub, p + sub.size()))
        ++n;
      return Value::integer(n);
    }
    const size_t f = (m == "find" || m == "index") ? hay.find(sub) : hay.rfind(sub);
    if (f == std::string_view::npos) {
      if (m == "index" || m == "rindex") raise("ValueError", "substring not found");
      return Value::integer(-1);
    }
    return Value::integer(
        static_cast<int64_t>(unicode::length(std::string_view(s).substr(0, b + f))));
  }
  if (m == "join") {
    const Value* it = arg(a, 0, nullptr);
    if (!it) raise("TypeError", "join() takes exactly one argument (0 given)");
    std::string out;
    size_t k = 0;
    for (const Value& v : in.iterate(*it)) {
      if (!v.is_string())
        raise("TypeError", "sequence item " + std::to_string(k) + ": expected str instance, " +
                               type_name(v) + " found");
      if (k++) out += s;
      out += v.str();
      in.check_size(out.size());
    }
    return Value::string(std::move(out));
  }
  if (m == "format") return Value::string(str_format(in, s, a));
  if (m == "isdigit" || m == "isnumeric" || m == "isdecimal" || m == "isalpha" || m == "isalnum" ||
      m == "isspace") {
    if (s.empty()) return Value::boolean(false);
    for (size_t i = 0; i < s.size();) {
      const char32_t c = unicode::next(s, i);
      bool ok;
      if (m == "isspace")
        ok = unicode::is_space(c);
      else if (m == "isalpha")
        ok = c < 0x80 ? std::isalpha(static_cast<int>(c)) != 0 : unicode::is_cased(c);
      else if (m == "isalnum")
        ok = c < 0x80 ? std::isalnum(static_cast<int>(c)) != 0
                      : (unicode::is_cased(c) || unicode::decimal_value(c) >= 0);
      else
        ok = unicode::decimal_value(c) >= 0;
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean(true);
  }
  if (m == "islower") return Value::boolean(unicode::is_lower(s));
  if (m == "isupper") return Value::boolean(unicode::is_upper(s));
  if (m == "zfill") {
    const int64_t width = int_arg(a, 0, nullptr, 0);
    const auto len = static_cast<int64_t>(unicode::length(s));
    if (width <= len) return self;
    std::string out = s;
    const size_t at = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
    out.insert(at, std::string(static_cast<size_t>(width - len), '0'));
    return Value::string(out);
  }
  if (m == "center" || m == "ljust" || m == "rjust") {
    const int64_t width = int_arg(a, 0, nullptr, 0);
    in.check_size(static_cast<size_t>(std::max<int64_t>(width, 0)));
    return Value::string(pad(s, width, fill_char(a, 1), m == "ljust" ? -1 : m == "rjust" ? 1 : 0));
  }
  if (m == "removeprefix" || m == "removesuffix") {
    const std::string& x = need_str(arg(a, 0, nullptr), m);
    if (m == "removeprefix" && s.compare(0, x.size(), x) == 0)
      return Value::string(s.substr(x.size()));
    if (m == "removesuffix" && !x.empty() && s.size() >= x.size() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0)
      return Value::string(s.substr(0, s.size() - x.size()));
    return Value::string(s);
  }
  if (m == "partition" || m == "rpartition") {
    const std::string& sep = need_str(arg(a, 0, nullptr), m);
    if (sep.empty()) raise("ValueError", "empty separator");
    const size_t f = m == "partition" ? s.find(sep) : s.rfind(sep);
    if (f == std::string::npos) {
      if (m == "partition")
        return Value::tuple({Value::string(s), Value::string(""), Value::string("")});
      return Value::tuple({Value::string(""), Value::string(""), Value::string(s)});
    }
    return Value::tuple({Value::string(s.substr(0, f)), Value::string(sep),
                         Value::string(s.substr(f + sep.size()))});
  }
  raise("AttributeError", "'str' object has no attribute " + repr_string(m));
}

}  // namespace

Value call_method(Interpreter& in, const Value& self, const std::string& m, CallArgs& a) {
  if (self.is_string()) return string_method(in, self, m, a);
  if (self.is_dict()) {
    const DictObject& d = self.dict_obj();
    if (m == "get") {
      no_kwargs(a, "get");
      const Value* key = arg(a, 0, nullptr);
      if (!key) raise("TypeError", "get expected at least 1 argument, got 0");
      if (const Value* v = d.find(*key)) return *v;
      const Value* dflt = arg(a, 1, nullptr);
      return dflt ? *dflt : Value::none();
    }
    std::vector<Value> out;
    for (const auto& [k, v] : d.entries) {
      if (m == "items")
        out.push_back(Value::tuple({k, v}));
      else if (m == "keys")
        out.push_back(k);
      else if (m == "values")
        out.push_back(v);
    }
    if (m == "copy") {
      auto copy = std::make_shared<DictObject>(d);
      return Value::dict(copy);
    }
    return Value::list(std::move(out));
  }
  if (self.is_list()) {
    const Value* x = arg(a, 0, nullptr);
    if (m == "copy") return Value::list(self.items());
    if (!x) raise("TypeError", m + "() takes exactly one argument (0 given)");
    int64_t count = 0;
    for (size_t i = 0; i < self.items().size(); ++i) {
      if (!py_equal(self.items()[i], *x)) continue;
      if (m == "index") return Value::integer(static_cast<int64_t>(i));
      ++count;
    }
    if (m == "index") raise("ValueError", py_repr(*x) + " is not in list");
    return Value::integer(count);
  }
  if (self.kind() == Kind::Loop) {
    LoopObject& l = self.loop_obj();
    if (m == "cycle") {
      if (a.args.empty()) raise("TypeError", "no items for cycling given");
      return a.args[l.index0 % a.args.size()];
    }
    const Value current = Value::list(a.args);
    if (l.has_changed && py_equal(l.last_changed, current)) return Value::boolean(false);
    l.last_changed = current;
    l.has_changed = true;
    return Value::boolean(true);
  }
  raise("AttributeError", "'" + type_name(self) + "' object has no attribute " + repr_string(m));
}

std::vector<std::pair<std::string, Value>> make_globals() {
  std::vector<std::pair<std::string, Value>> g;
  g.emplace_back("range", native("range", [](Interpreter& in, CallArgs& a) {
                   if (a.args.empty() || a.args.size() > 3)
                     raise("TypeError", "range expected at most 3 arguments, got " +
                                            std::to_string(a.args.size()));
                   int64_t start = 0, stop, step = 1;
                   if (a.args.size() == 1) {
                     stop = int_arg(a, 0, nullptr, 0);
                   } else {
                     start = int_arg(a, 0, nullptr, 0);
                     stop = int_arg(a, 1, nullptr, 0);
                     step = int_arg(a, 2, nullptr, 1);
                   }
                   if (step == 0) raise("ValueError", "range() arg 3 must not be zero");
                   std::vector<Value> out;
                   for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                     in.count_iterations(1);
                     out.push_back(Value::integer(i));
                   }
                   return Value::list(std::move(out));
                 }));
  g.emplace_back("dict", native("dict", [](Interpreter& in, CallArgs& a) {
                   Value d = Value::dict();
                   if (!a.args.empty()) {
                     if (a.args.size() > 1)
                       raise("TypeError", "dict expected at most 1 argument, got " +
                                              std::to_string(a.args.size()));
                     const Value& src = a.args[0];
                     if (src.is_dict()) {
                       for (const auto& [k, v] : src.dict_obj().entries) d.mutable_dict().set(k, v);
                     } else {
                       for (const Value& pair : in.iterate(src)) {
                         std::vector<Value> kv = in.iterate(pair);
                         if (kv.size() != 2)
                           raise("ValueError", "dictionary update sequence element has length " +
                                                   std::to_string(kv.size()) + "; 2 is required");
                         d.mutable_dict().set(kv[0], kv[1]);
                       }
                     }
                   }
                   for (const auto& [k, v] : a.kwargs) d.mutable_dict().set(Value::string(k), v);
                   return d;
                 }));
  g.emplace_back(
      "namespace", native("namespace", [](Interpreter& in, CallArgs& a) {
        auto ns = std::make_shared<NamespaceObject>();
        CallArgs dict_args = a;
        Value d =
            in.call(native("dict",
                           [](Interpreter& i2, CallArgs& x) {
                             Value r = Value::dict();
                             if (!x.args.empty()) {
                               const Value& src = x.args[0];
                               if (src.is_dict())
                                 for (const auto& [k, v] : src.dict_obj().entries)
                                   r.mutable_dict().set(k, v);
                               else
                                 for (const Value& pair : i2.iterate(src)) {
                                   std::vector<Value> kv = i2.iterate(pair);
                                   if (kv.size() != 2)
                                     raise("ValueError",
                                           "dictionary update sequence element has wrong length");
                                   r.mutable_dict().set(kv[0], kv[1]);
                                 }
                             }
                             for (const auto& [k, v] : x.kwargs)
                               r.mutable_dict().set(Value::string(k), v);
                             return r;
                           }),
                    dict_args);
        for (const auto& [k, v] : d.dict_obj().entries) {
          const std::string name = py_str(k);
          if (k.is_string() && !name.empty() && name[0] == '_')
            raise("SecurityError",
                  "Chat templates cannot store underscore-prefixed attributes on a namespace, but "
                  "got " +
                      repr_string(name) + ". Please rename the attribute.");
          ns->set(name, v);
        }
        return Value::namespace_(ns);
      }));
  g.emplace_back("raise_exception",
                 native("raise_exception", [](Interpreter&, CallArgs& a) -> Value {
                   raise("TemplateError", a.args.empty() ? std::string() : py_str(a.args[0]));
                 }));
  g.emplace_back("strftime_now", native("strftime_now", [](Interpreter&, CallArgs& a) {
                   const std::string fmt = str_arg(a, 0, "format", "");
                   const std::time_t now = std::time(nullptr);
                   std::tm tm{};
                   localtime_r(&now, &tm);
                   std::string buf(256 + fmt.size() * 8, '\0');
                   const size_t n =
                       fmt.empty() ? 0 : std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
                   buf.resize(n);
                   return Value::string(buf);
                 }));
  g.emplace_back("joiner", native("joiner", [](Interpreter&, CallArgs& a) {
                   const std::string sep = str_arg(a, 0, "sep", ", ");
                   auto used = std::make_shared<bool>(false);
                   return native("joiner", [sep, used](Interpreter&, CallArgs&) {
                     if (!*used) {
                       *used = true;
                       return Value::string("");
                     }
                     return Value::string(sep);
                   });
                 }));
  return g;
}

}  // namespace qcoder::jinja
