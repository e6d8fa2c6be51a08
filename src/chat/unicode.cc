#include "chat/unicode.h"

#include <algorithm>
#include <cstdio>

#include "core/utf8.h"

namespace qcoder::jinja::unicode {
namespace {

struct CodeRange {
  char32_t first, last;
};
struct DigitRange {
  char32_t zero;
  int count;
};
struct CaseMapping {
  char32_t from;
  int n;
  char32_t to[3];
};

#include "chat/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t c) {
  const CodeRange* end = table + N;
  const CodeRange* it =
      std::upper_bound(table, end, c, [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != table && (it - 1)->last >= c;
}

template <size_t N>
const CaseMapping* find_mapping(const CaseMapping (&table)[N], char32_t c) {
  const CaseMapping* end = table + N;
  const CaseMapping* it =
      std::lower_bound(table, end, c, [](const CaseMapping& m, char32_t v) { return m.from < v; });
  return it != end && it->from == c ? it : nullptr;
}

template <size_t N>
void append_mapped(const CaseMapping (&table)[N], std::string& out, char32_t c) {
  if (c < 0x80 && &table[0] == &kLower[0]) {
    out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    return;
  }
  if (c < 0x80 && &table[0] == &kUpper[0]) {
    out.push_back(static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c));
    return;
  }
  if (const CaseMapping* m = find_mapping(table, c)) {
    for (int k = 0; k < m->n; ++k) append(out, m->to[k]);
  } else {
    append(out, c);
  }
}

}  // namespace

char32_t next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int n = 0;
  char32_t c = 0;
  if ((b0 & 0xE0) == 0xC0)
    n = 1, c = b0 & 0x1F;
  else if ((b0 & 0xF0) == 0xE0)
    n = 2, c = b0 & 0x0F;
  else if ((b0 & 0xF8) == 0xF0)
    n = 3, c = b0 & 0x07;
  else {
    ++i;
    return 0xFFFD;
  }
  if (i + n >= s.size()) {
    ++i;
    return 0xFFFD;
  }
  for (int k = 1; k <= n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    c = (c << 6) | (b & 0x3F);
  }
  i += n + 1;
  return c;
}

void append(std::string& out, char32_t c) { append_utf8(out, c); }

std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(next(s, i));
  return out;
}

std::string encode(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append(out, c);
  return out;
}

size_t length(std::string_view s) {
  size_t n = 0;
  bool ascii = true;
  for (char ch : s)
    if (static_cast<unsigned char>(ch) >= 0x80) ascii = false;
  if (ascii) return s.size();
  for (size_t i = 0; i < s.size(); ++n) next(s, i);
  return n;
}

size_t offset_of(std::string_view s, size_t cp) {
  size_t i = 0;
  for (size_t k = 0; k < cp && i < s.size(); ++k) next(s, i);
  return i;
}

bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  return in_ranges(kSpace, c);
}
bool is_printable(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7F;
  return !in_ranges(kNonPrintable, c);
}
bool is_cased(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return in_ranges(kCased, c);
}
int decimal_value(char32_t c) {
  if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
  for (const DigitRange& r : kDecimal)
    if (c >= r.zero && c < r.zero + static_cast<char32_t>(r.count))
      return static_cast<int>(c - r.zero);
  return -1;
}

void append_lower(std::string& out, char32_t c) { append_mapped(kLower, out, c); }
void append_upper(std::string& out, char32_t c) { append_mapped(kUpper, out, c); }
void append_title(std::string& out, char32_t c) {
  if (const CaseMapping* m = find_mapping(kTitle, c)) {
    for (int k = 0; k < m->n; ++k) append(out, m->to[k]);
  } else {
    append(out, c);
  }
}

namespace {
// Python lowercases a capital sigma to the final form when it ends a cased word.
bool final_sigma(const std::vector<char32_t>& cps, size_t i) {
  size_t j = i;
  bool before = false;
  while (j > 0) {
    --j;
    if (is_cased(cps[j])) {
      before = true;
      break;
    }
    if (cps[j] != 0x27 && cps[j] != 0xAD && cps[j] != 0x2019) break;
  }
  if (!before) return false;
  for (size_t k = i + 1; k < cps.size(); ++k) {
    if (is_cased(cps[k])) return false;
    if (cps[k] != 0x27 && cps[k] != 0xAD && cps[k] != 0x2019) break;
  }
  return true;
}
}  // namespace

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool ascii = true;
  for (char ch : s)
    if (static_cast<unsigned char>(ch) >= 0x80) ascii = false;
  if (ascii) {
    for (char ch : s) out.push_back(ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch + 32) : ch);
    return out;
  }
  const auto cps = decode(s);
  for (size_t i = 0; i < cps.size(); ++i) {
    if (cps[i] == 0x3A3 && final_sigma(cps, i))
      append(out, 0x3C2);
    else
      append_lower(out, cps[i]);
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) append_upper(out, next(s, i));
  return out;
}

std::string title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = next(s, i);
    if (prev_cased)
      append_lower(out, c);
    else
      append_title(out, c);
    prev_cased = is_cased(c);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  if (s.empty()) return out;
  size_t i = 0;
  append_title(out, next(s, i));
  out += lower(s.substr(i));
  return out;
}

bool is_lower(std::string_view s) {
  bool cased = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = next(s, i);
    std::string l, u;
    append_lower(l, c);
    append_upper(u, c);
    std::string self;
    append(self, c);
    if (self != l) return false;  // has an uppercase form that differs: not lowercase
    if (u != self) cased = true;
  }
  return cased;
}

bool is_upper(std::string_view s) {
  bool cased = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = next(s, i);
    std::string l, u, self;
    append_lower(l, c);
    append_upper(u, c);
    append(self, c);
    if (self != u) return false;
    if (l != self) cased = true;
  }
  return cased;
}

std::string strip(std::string_view s, bool left, bool right) {
  const auto cps = decode(s);
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && is_space(cps[b])) ++b;
  if (right)
    while (e > b && is_space(cps[e - 1])) --e;
  if (b == 0 && e == cps.size()) return std::string(s);
  return encode(std::vector<char32_t>(cps.begin() + static_cast<std::ptrdiff_t>(b),
                                      cps.begin() + static_cast<std::ptrdiff_t>(e)));
}

std::string strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  const auto cps = decode(s);
  const auto set = decode(chars);
  auto in_set = [&](char32_t c) { return std::find(set.begin(), set.end(), c) != set.end(); };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && in_set(cps[b])) ++b;
  if (right)
    while (e > b && in_set(cps[e - 1])) --e;
  return encode(std::vector<char32_t>(cps.begin() + static_cast<std::ptrdiff_t>(b),
                                      cps.begin() + static_cast<std::ptrdiff_t>(e)));
}

void append_python_escape(std::string& out, char32_t c) {
  char b[16];
  if (c < 0x100)
    std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned>(c));
  else if (c < 0x10000)
    std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
  else
    std::snprintf(b, sizeof b, "\\U%08x", static_cast<unsigned>(c));
  out += b;
}

size_t complete_prefix(std::string_view s) {
  // Walk back over at most 3 continuation bytes to the last lead byte.
  size_t n = s.size();
  size_t k = 0;
  while (k < 3 && k < n && (static_cast<unsigned char>(s[n - 1 - k]) & 0xC0) == 0x80) ++k;
  if (k == n) return n;
  const auto lead = static_cast<unsigned char>(s[n - 1 - k]);
  size_t need = 0;
  if (lead >= 0xF0 && lead < 0xF8)
    need = 3;
  else if (lead >= 0xE0)
    need = 2;
  else if (lead >= 0xC0)
    need = 1;
  else
    return n;  // ASCII or stray continuation bytes: nothing to wait for
  return need > k ? n - 1 - k : n;
}

}  // namespace qcoder::jinja::unicode
