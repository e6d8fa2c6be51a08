// jinja2 3.1's builtin filters and tests, with transformers' tojson.
#include <algorithm>
#include <cmath>
#include <map>

#include "chat/builtins.h"
#include "chat/operators.h"
#include "chat/unicode.h"

namespace qcoder::jinja {
namespace {

std::string soft_str(const Value& v) { return v.is_string() ? v.str() : py_str(v); }

Value str_result(const Value& in, std::string s) {
  return Value::string(std::move(s), in.is_markup());
}

// Attribute getter for filters' attribute= arguments ("a.b" and "0" allowed), as make_attrgetter.
Value get_path(Interpreter& in, const Value& item, const std::string& path, const Value* dflt) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        }))
      v = in.getitem(v, Value::integer(std::stoll(part)));
    else
      v = in.getitem(v, Value::string(part));
    if (dflt && v.is_undefined()) return *dflt;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

Value key_for_sort(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(unicode::lower(v.str()));
  return v;
}

std::vector<Value> sorted(Interpreter& in, std::vector<Value> items, bool reverse,
                          bool case_sensitive, const Value* attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (Value& v : items) {
    Value k = attribute ? get_path(in, v, py_str(*attribute), nullptr) : v;
    keyed.emplace_back(key_for_sort(k, case_sensitive), std::move(v));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? py_less(b.first, a.first) : py_less(a.first, b.first);
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return out;
}

// select/reject/selectattr/rejectattr
Value select_impl(Interpreter& in, const Value& seq, CallArgs& a, bool with_attr, bool want) {
  size_t i = 0;
  std::string attr;
  if (with_attr) {
    const Value* at = arg(a, 0, nullptr);
    if (!at) raise("TypeError", "Missing parameter for attribute name");
    attr = py_str(*at);
    i = 1;
  }
  std::string test;
  CallArgs test_args;
  if (i < a.args.size()) {
    test = py_str(a.args[i]);
    test_args.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(i + 1), a.args.end());
    test_args.kwargs = a.kwargs;
  }
  std::vector<Value> out;
  for (const Value& item : in.iterate(seq)) {
    const Value subject = with_attr ? get_path(in, item, attr, nullptr) : item;
    CallArgs ta = test_args;
    const bool ok = test.empty() ? truthy(subject) : in.apply_test(test, subject, ta);
    if (ok == want) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_abs(Interpreter& in, const Value& v, CallArgs&) {
  if (v.kind() == Kind::Int || v.kind() == Kind::Bool)
    return unary_op(in, v.is_number() && v.as_float() < 0 ? '-' : '+', v);
  if (v.is_float()) return Value::number(std::fabs(v.as_float()));
  raise("TypeError", "bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_attr(Interpreter& in, const Value& v, CallArgs& a) {
  const std::string name = str_arg(a, 0, nullptr, "");
  if (auto attr = builtin_attribute(v, name)) return *attr;
  if (v.kind() == Kind::Namespace)
    if (const Value* x = v.ns().find(name)) return *x;
  (void)in;
  return Value::undefined(repr_string(object_type_repr(v)) + " has no attribute " +
                          repr_string(name));
}

Value f_batch(Interpreter& in, const Value& v, CallArgs& a) {
  const int64_t n = int_arg(a, 0, "linecount", 1);
  if (n <= 0) raise("ValueError", "linecount must be positive");
  const Value* fill = arg(a, 1, "fill_with");
  std::vector<Value> out, cur;
  for (const Value& x : in.iterate(v)) {
    cur.push_back(x);
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (fill && !fill->is_none())
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs&) {
  return str_result(v, unicode::capitalize(soft_str(v)));
}

Value f_center(Interpreter& in, const Value& v, CallArgs& a) {
  CallArgs m;
  m.args.push_back(Value::integer(int_arg(a, 0, "width", 80)));
  return call_method(in, Value::string(soft_str(v)), "center", m);
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default_value");
  const bool boolean = bool_arg(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !truthy(v))) return d ? *d : Value::string("");
  return v;
}

Value f_dictsort(Interpreter& in, const Value& v, CallArgs& a) {
  if (!v.is_dict()) raise("TypeError", "can only dictsort mappings");
  const bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
  const std::string by = str_arg(a, 1, "by", "key");
  const bool reverse = bool_arg(a, 2, "reverse", false);
  if (by != "key" && by != "value")
    raise("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
  std::vector<Value> items;
  for (const auto& [k, x] : v.dict_obj().entries) items.push_back(Value::tuple({k, x}));
  const Value pos = Value::integer(by == "key" ? 0 : 1);
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& it : items)
    keyed.emplace_back(key_for_sort(it.items()[by == "key" ? 0 : 1], case_sensitive), it);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? py_less(y.first, x.first) : py_less(x.first, y.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(kv.second);
  (void)in;
  (void)pos;
  return Value::list(std::move(out));
}

Value f_escape(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_markup()) return v;
  return Value::string(markup_escape(soft_str(v)), true);
}
Value f_forceescape(Interpreter&, const Value& v, CallArgs&) {
  return Value::string(markup_escape(soft_str(v)), true);
}

Value f_first(Interpreter& in, const Value& v, CallArgs&) {
  std::vector<Value> items = in.iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter& in, const Value& v, CallArgs&) {
  if (!v.is_list() && !v.is_string() && !v.is_dict() && !v.is_undefined())
    raise("TypeError", "'" + type_name(v) + "' object is not reversible");
  std::vector<Value> items = in.iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default");
  const Value dflt = d ? *d : Value::number(0.0);
  if (v.is_number()) return Value::number(v.as_float());
  if (v.is_string())
    if (auto f = parse_python_float(v.str())) return Value::number(*f);
  return dflt;
}

Value f_format(Interpreter& in, const Value& v, CallArgs& a) {
  if (!a.args.empty() && !a.kwargs.empty())
    raise("FilterArgumentError", "can't handle positional and keyword arguments at the same time");
  Value args;
  if (!a.kwargs.empty()) {
    args = Value::dict();
    for (const auto& [k, x] : a.kwargs) args.mutable_dict().set(Value::string(k), x);
  } else {
    args = Value::tuple(a.args);
  }
  return str_result(v, percent_format(in, soft_str(v), args));
}

Value f_indent(Interpreter&, const Value& v, CallArgs& a) {
  const Value* w = arg(a, 0, "width");
  std::string indention =
      w && w->is_string()
          ? w->str()
          : std::string(static_cast<size_t>(std::max<int64_t>(0, int_arg(a, 0, "width", 4))), ' ');
  const bool first = bool_arg(a, 1, "first", false);
  const bool blank = bool_arg(a, 2, "blank", false);
  std::string s = soft_str(v) + "\n";
  CallArgs none;
  Interpreter* dummy = nullptr;
  (void)dummy;
  // splitlines on the Python line boundaries
  std::vector<std::string> lines;
  {
    const auto cps = unicode::decode(s);
    std::vector<char32_t> cur;
    for (size_t i = 0; i < cps.size(); ++i) {
      const char32_t c = cps[i];
      if (c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
          c == 0x85 || c == 0x2028 || c == 0x2029) {
        lines.push_back(unicode::encode(cur));
        cur.clear();
        if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
      } else {
        cur.push_back(c);
      }
    }
    if (!cur.empty()) lines.push_back(unicode::encode(cur));
  }
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i)
      rv += "\n" + (lines[i].empty() ? "" : indention + lines[i]);
  }
  if (first) rv = indention + rv;
  return str_result(v, rv);
}

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default");
  const Value dflt = d ? *d : Value::integer(0);
  const int64_t base = int_arg(a, 1, "base", 10);
  if (v.is_string()) {
    if (auto i = parse_python_int(v.str(), static_cast<int>(base))) return *i;
    if (auto f = parse_python_float(v.str())) {
      if (std::isfinite(*f)) {
        const std::string digits = integral_double_digits(std::trunc(*f));
        if (auto i = parse_python_int(digits)) return *i;
      }
    }
    return dflt;
  }
  if (v.kind() == Kind::Bool) return Value::integer(v.as_bool());
  if (v.is_int()) return v;
  if (v.is_float()) {
    if (!std::isfinite(v.as_float())) return dflt;
    if (auto i = parse_python_int(integral_double_digits(std::trunc(v.as_float())))) return *i;
  }
  return dflt;
}

Value f_items(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::list();
  if (!v.is_dict()) raise("TypeError", "Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.dict_obj().entries) out.push_back(Value::tuple({k, x}));
  return Value::list(std::move(out));
}

Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
  const std::string sep = str_arg(a, 0, "d", "");
  const Value* attribute = arg(a, 1, "attribute");
  std::string out;
  size_t k = 0;
  for (const Value& x : in.iterate(v)) {
    if (k++) out += sep;
    append_str(
        out, attribute && !attribute->is_none() ? get_path(in, x, py_str(*attribute), nullptr) : x);
    in.check_size(out.size());
  }
  return Value::string(std::move(out));
}

Value f_length(Interpreter&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Kind::String:
      return Value::integer(static_cast<int64_t>(unicode::length(v.str())));
    case Kind::List:
      return Value::integer(static_cast<int64_t>(v.items().size()));
    case Kind::Dict:
      return Value::integer(static_cast<int64_t>(v.dict_obj().size()));
    case Kind::Undefined:
      return Value::integer(0);
    case Kind::Loop:
      return Value::integer(static_cast<int64_t>(v.loop_obj().items.size()));
    default:
      raise("TypeError", "object of type '" + type_name(v) + "' has no len()");
  }
}

Value f_list(Interpreter& in, const Value& v, CallArgs&) { return Value::list(in.iterate(v)); }
Value f_lower(Interpreter&, const Value& v, CallArgs&) {
  return str_result(v, unicode::lower(soft_str(v)));
}
Value f_upper(Interpreter&, const Value& v, CallArgs&) {
  return str_result(v, unicode::upper(soft_str(v)));
}

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  const Value* attribute = a.kwarg("attribute");
  if (attribute) {
    const Value* dflt = a.kwarg("default");
    for (const Value& x : in.iterate(v)) out.push_back(get_path(in, x, py_str(*attribute), dflt));
    return Value::list(std::move(out));
  }
  if (a.args.empty()) raise("FilterArgumentError", "map requires a filter argument");
  const std::string name = py_str(a.args[0]);
  CallArgs fa;
  fa.args.assign(a.args.begin() + 1, a.args.end());
  fa.kwargs = a.kwargs;
  for (const Value& x : in.iterate(v)) {
    CallArgs c = fa;
    out.push_back(in.apply_filter(name, x, c));
  }
  return Value::list(std::move(out));
}

Value min_max(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  const bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  std::vector<Value> items = in.iterate(v);
  if (items.empty())
    return Value::undefined(std::string("No aggregated item, sequence was empty."));
  size_t best = 0;
  auto key = [&](const Value& x) {
    return key_for_sort(
        attribute && !attribute->is_none() ? get_path(in, x, py_str(*attribute), nullptr) : x,
        case_sensitive);
  };
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (want_max ? py_less(best_key, k) : py_less(k, best_key)) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}
Value f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Value f_min(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }

Value f_pprint(Interpreter&, const Value& v, CallArgs&) { return Value::string(py_repr(v)); }

Value f_reject(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, false, false);
}
Value f_select(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, false, true);
}
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, true, false);
}
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, true, true);
}

Value f_replace(Interpreter& in, const Value& v, CallArgs& a) {
  CallArgs m;
  m.args.push_back(Value::string(str_arg(a, 0, "old", "")));
  m.args.push_back(Value::string(str_arg(a, 1, "new", "")));
  const Value* count = arg(a, 2, "count");
  if (count && !count->is_none()) m.args.push_back(*count);
  return call_method(in, Value::string(soft_str(v)), "replace", m);
}

Value f_reverse(Interpreter& in, const Value& v, CallArgs&) {
  if (v.is_string()) {
    auto cps = unicode::decode(v.str());
    std::reverse(cps.begin(), cps.end());
    return str_result(v, unicode::encode(cps));
  }
  std::vector<Value> items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_round(Interpreter&, const Value& v, CallArgs& a) {
  const int64_t precision = int_arg(a, 0, "precision", 0);
  const std::string method = str_arg(a, 1, "method", "common");
  if (method != "common" && method != "ceil" && method != "floor")
    raise("FilterArgumentError", "method must be common, ceil or floor");
  if (!v.is_number())
    raise("TypeError", "type " + type_name(v) + " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) return Value::integer(v.kind() == Kind::Bool ? v.as_bool() : v.as_int());
    return Value::number(python_round(v.as_float(), precision));
  }
  const double p = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_float() * p;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
}

Value f_safe(Interpreter&, const Value& v, CallArgs&) { return Value::string(soft_str(v), true); }

Value f_slice(Interpreter& in, const Value& v, CallArgs& a) {
  const int64_t slices = int_arg(a, 0, "slices", 1);
  if (slices <= 0) raise("ValueError", "slices must be positive");
  const Value* fill = arg(a, 1, "fill_with");
  std::vector<Value> seq = in.iterate(v);
  const auto length = static_cast<int64_t>(seq.size());
  const int64_t per = length / slices, extra = length % slices;
  int64_t offset = 0;
  std::vector<Value> out;
  for (int64_t i = 0; i < slices; ++i) {
    const int64_t start = offset + i * per;
    if (i < extra) ++offset;
    const int64_t end = offset + (i + 1) * per;
    std::vector<Value> part(seq.begin() + start, seq.begin() + end);
    if (fill && !fill->is_none() && i >= extra) part.push_back(*fill);
    out.push_back(Value::list(std::move(part)));
  }
  return Value::list(std::move(out));
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  const bool reverse = bool_arg(a, 0, "reverse", false);
  const bool case_sensitive = bool_arg(a, 1, "case_sensitive", false);
  const Value* attribute = arg(a, 2, "attribute");
  return Value::list(sorted(in, in.iterate(v), reverse, case_sensitive,
                            attribute && !attribute->is_none() ? attribute : nullptr));
}

Value f_string(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_string()) return v;
  return Value::string(py_str(v));
}

Value f_striptags(Interpreter&, const Value& v, CallArgs&) {
  std::string s = soft_str(v), out;
  bool in_tag = false;
  for (char c : s) {
    if (c == '<')
      in_tag = true;
    else if (c == '>' && in_tag)
      in_tag = false;
    else if (!in_tag)
      out += c;
  }
  return Value::string(unicode::strip(out, true, true));
}

Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* attribute = arg(a, 0, "attribute");
  const Value* start = arg(a, 1, "start");
  Value total = start ? *start : Value::integer(0);
  for (const Value& x : in.iterate(v))
    total = binary_op(
        in, "+", total,
        attribute && !attribute->is_none() ? get_path(in, x, py_str(*attribute), nullptr) : x);
  return total;
}

// jinja2's title: words split on whitespace and -({[< keep their separators.
Value f_title(Interpreter&, const Value& v, CallArgs&) {
  const auto cps = unicode::decode(soft_str(v));
  auto is_sep = [](char32_t c) {
    return unicode::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    const bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    if (sep) {
      for (size_t k = i; k < j; ++k) unicode::append(out, cps[k]);
    } else {
      unicode::append_upper(out, cps[i]);
      out += unicode::lower(
          unicode::encode(std::vector<char32_t>(cps.begin() + static_cast<std::ptrdiff_t>(i + 1),
                                                cps.begin() + static_cast<std::ptrdiff_t>(j))));
    }
    i = j;
  }
  return str_result(v, out);
}

// transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
Value f_tojson(Interpreter& in, const Value& v, CallArgs& a) {
  JsonDumpOptions o;
  o.ensure_ascii = bool_arg(a, 0, "ensure_ascii", false);
  if (const Value* indent = arg(a, 1, "indent"); indent && !indent->is_none()) {
    if (indent->is_string())
      o.indent = indent->str();
    else
      o.indent =
          std::string(static_cast<size_t>(std::max<int64_t>(0, int_arg(a, 1, "indent", 0))), ' ');
    o.item_sep = ",";
  }
  if (const Value* sep = arg(a, 2, "separators"); sep && !sep->is_none()) {
    std::vector<Value> parts = in.iterate(*sep);
    if (parts.size() != 2 || !parts[0].is_string() || !parts[1].is_string())
      raise("ValueError", "separators must be a (item_separator, key_separator) pair");
    o.item_sep = parts[0].str();
    o.key_sep = parts[1].str();
  }
  o.sort_keys = bool_arg(a, 3, "sort_keys", false);
  std::string out = json_dumps(v, o);
  in.check_size(out.size());
  return Value::string(std::move(out));
}

Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
  const Value* chars = arg(a, 0, "chars");
  const std::string s = soft_str(v);
  if (!chars || chars->is_none()) return str_result(v, unicode::strip(s, true, true));
  return str_result(v, unicode::strip_chars(s, soft_str(*chars), true, true));
}

Value f_truncate(Interpreter&, const Value& v, CallArgs& a) {
  const std::string s = soft_str(v);
  const int64_t length = int_arg(a, 0, "length", 255);
  const bool killwords = bool_arg(a, 1, "killwords", false);
  const std::string end = str_arg(a, 2, "end", "...");
  const int64_t leeway = int_arg(a, 3, "leeway", 5);
  const auto n = static_cast<int64_t>(unicode::length(s)),
             end_len = static_cast<int64_t>(unicode::length(end));
  if (length < end_len)
    raise("AssertionError",
          "expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  if (leeway < 0) raise("AssertionError", "expected leeway >= 0, got " + std::to_string(leeway));
  if (n <= length + leeway) return Value::string(s);
  std::string head = s.substr(0, unicode::offset_of(s, static_cast<size_t>(length - end_len)));
  if (killwords) return Value::string(head + end);
  const size_t sp = head.rfind(' ');
  if (sp != std::string::npos) head.resize(sp);
  return Value::string(head + end);
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  const bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  std::vector<Value> seen, out;
  for (const Value& x : in.iterate(v)) {
    Value k = key_for_sort(
        attribute && !attribute->is_none() ? get_path(in, x, py_str(*attribute), nullptr) : x,
        case_sensitive);
    bool dup = false;
    for (const Value& s : seen)
      if (py_equal(s, k)) dup = true;
    if (dup) continue;
    seen.push_back(k);
    out.push_back(x);
  }
  return Value::list(std::move(out));
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs&) {
  const auto cps = unicode::decode(soft_str(v));
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : cps) {
    const bool w = c == '_' || (c < 0x80 ? std::isalnum(static_cast<int>(c)) != 0
                                         : !unicode::is_space(c) && unicode::is_printable(c));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

// ---- tests ----

bool t_defined(Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_number(Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_sequence(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}
bool t_iterable(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}
bool t_callable(Interpreter&, const Value& v, CallArgs&) {
  return v.kind() == Kind::Callable || (v.kind() == Kind::Loop && v.loop_obj().recurse);
}
bool t_escaped(Interpreter&, const Value& v, CallArgs&) { return v.is_markup(); }
bool t_lower(Interpreter&, const Value& v, CallArgs&) { return unicode::is_lower(py_str(v)); }
bool t_upper(Interpreter&, const Value& v, CallArgs&) { return unicode::is_upper(py_str(v)); }
int64_t need_int(const Value& v) {
  if (v.kind() == Kind::Bool) return v.as_bool();
  if (v.kind() != Kind::Int)
    raise("TypeError", "not all arguments converted during string formatting");
  return v.as_int();
}
bool t_odd(Interpreter&, const Value& v, CallArgs&) { return (need_int(v) % 2 + 2) % 2 == 1; }
bool t_even(Interpreter&, const Value& v, CallArgs&) { return need_int(v) % 2 == 0; }
bool t_divisibleby(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* n = arg(a, 0, "num");
  if (!n) raise("TypeError", "test_divisibleby() missing 1 required positional argument: 'num'");
  const Value r = binary_op(in, "%", v, *n);
  return py_equal(r, Value::integer(0));
}
const Value& other(const CallArgs& a) {
  const Value* o = arg(a, 0, "other");
  if (!o) raise("TypeError", "test missing 1 required positional argument: 'other'");
  return *o;
}
bool t_eq(Interpreter& in, const Value& v, CallArgs& a) {
  return compare_op(in, "==", v, other(a));
}
bool t_ne(Interpreter& in, const Value& v, CallArgs& a) {
  return compare_op(in, "!=", v, other(a));
}
bool t_lt(Interpreter& in, const Value& v, CallArgs& a) { return compare_op(in, "<", v, other(a)); }
bool t_le(Interpreter& in, const Value& v, CallArgs& a) {
  return compare_op(in, "<=", v, other(a));
}
bool t_gt(Interpreter& in, const Value& v, CallArgs& a) { return compare_op(in, ">", v, other(a)); }
bool t_ge(Interpreter& in, const Value& v, CallArgs& a) {
  return compare_op(in, ">=", v, other(a));
}
bool t_in(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* seq = arg(a, 0, "seq");
  if (!seq) raise("TypeError", "test_in() missing 1 required positional argument: 'seq'");
  return contains(in, *seq, v);
}
bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const Value& o = other(a);
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Kind::None:
    case Kind::Undefined:
      return true;
    case Kind::Bool:
    case Kind::Int:
    case Kind::Float:
      return py_equal(v, o);
    case Kind::String:
      return v.identity() == o.identity() || v.str() == o.str();
    default:
      return v.identity() == o.identity();
  }
}
bool t_filter(Interpreter& in, const Value& v, CallArgs&) {
  return v.is_string() && in.has_filter(v.str());
}
bool t_test(Interpreter& in, const Value& v, CallArgs&) {
  return v.is_string() && in.has_test(v.str());
}

}  // namespace

FilterFn find_filter(const std::string& name) {
  static const std::map<std::string, FilterFn> kFilters = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_capitalize},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_forceescape},
      {"format", f_format},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"pprint", f_pprint},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"slice", f_slice},
      {"sort", f_sort},
      {"string", f_string},
      {"striptags", f_striptags},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"truncate", f_truncate},
      {"unique", f_unique},
      {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  auto it = kFilters.find(name);
  return it == kFilters.end() ? nullptr : it->second;
}

TestFn find_test(const std::string& name) {
  static const std::map<std::string, TestFn> kTests = {
      {"boolean", t_boolean},
      {"callable", t_callable},
      {"defined", t_defined},
      {"divisibleby", t_divisibleby},
      {"eq", t_eq},
      {"equalto", t_eq},
      {"==", t_eq},
      {"escaped", t_escaped},
      {"even", t_even},
      {"false", t_false},
      {"filter", t_filter},
      {"float", t_float},
      {"ge", t_ge},
      {">=", t_ge},
      {"gt", t_gt},
      {"greaterthan", t_gt},
      {">", t_gt},
      {"in", t_in},
      {"integer", t_integer},
      {"iterable", t_iterable},
      {"le", t_le},
      {"<=", t_le},
      {"lower", t_lower},
      {"lt", t_lt},
      {"lessthan", t_lt},
      {"<", t_lt},
      {"mapping", t_mapping},
      {"ne", t_ne},
      {"!=", t_ne},
      {"none", t_none},
      {"number", t_number},
      {"odd", t_odd},
      {"sameas", t_sameas},
      {"sequence", t_sequence},
      {"string", t_string},
      {"test", t_test},
      {"true", t_true},
      {"undefined", t_undefined},
      {"upper", t_upper},
  };
  auto it = kTests.find(name);
  return it == kTests.end() ? nullptr : it->second;
}

}  // namespace qcoder::jinja
