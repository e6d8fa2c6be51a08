#include "tokenizer/pretokenizer.h"

namespace qcoder::tok {
namespace {

struct Cursor {
  const uint8_t* s;
  size_t n;
  const CharClassTable& cls;

  // Code point and class at i (i < n).
  char32_t at(size_t i, size_t* len) const {
    if (s[i] < 0x80) {
      *len = 1;
      return s[i];
    }
    return decode_utf8(s + i, len);
  }
  uint8_t class_at(size_t i, size_t* len) const { return cls(at(i, len)); }

  size_t letters_end(size_t i) const {
    while (i < n) {
      size_t len;
      if (!(class_at(i, &len) & kLetter)) break;
      i += len;
    }
    return i;
  }
};

bool is_newline(char32_t c) { return c == '\r' || c == '\n'; }

// Not \s, \p{L} or \p{N}: the class [^\s\p{L}\p{N}] of alternative 4.
bool is_other(uint8_t k) { return !(k & (kLetter | kNumber | kWhiteSpace)); }

// (?i:'s|'t|'re|'ve|'m|'ll|'d) after the apostrophe at s[0..n): bytes matched, or 0. The
// only non-ASCII character that case-folds to one of these letters is ſ (U+017F -> s).
size_t contraction(const uint8_t* s, size_t n) {
  if (n == 0) return 0;
  const auto lower = [](uint8_t c) { return static_cast<uint8_t>(c | 0x20); };
  const uint8_t c = lower(s[0]);
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return s[0] >= 'A' && s[0] <= 'z' ? 1 : 0;
  if (s[0] == 0xC5 && n >= 2 && s[1] == 0xBF) return 2;  // ſ
  if (n >= 2) {
    const uint8_t c1 = lower(s[1]);
    const bool letters = s[0] >= 'A' && s[1] >= 'A' && s[0] <= 'z' && s[1] <= 'z';
    if (letters && ((c == 'r' && c1 == 'e') || (c == 'v' && c1 == 'e') || (c == 'l' && c1 == 'l')))
      return 2;
  }
  return 0;
}

}  // namespace

size_t pretoken_end(std::string_view text, size_t i, const CharClassTable& cls) {
  const Cursor cur{reinterpret_cast<const uint8_t*>(text.data()), text.size(), cls};
  const size_t n = text.size();
  size_t len0;
  const char32_t c0 = cur.at(i, &len0);
  const uint8_t k0 = cls(c0);
  const size_t j = i + len0;

  // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c0 == '\'') {
    if (const size_t m = contraction(cur.s + j, n - j)) return j + m;
  }
  // 2. [^\r\n\p{L}\p{N}]?\p{L}+ — a letter run, or one other character and the letter run after it.
  if (k0 & kLetter) return cur.letters_end(j);
  if (!(k0 & kNumber) && !is_newline(c0) && j < n) {
    size_t len1;
    if (cur.class_at(j, &len1) & kLetter) return cur.letters_end(j + len1);
  }
  // 3. \p{N} — one code point.
  if (k0 & kNumber) return j;
  // 4. " ?[^\s\p{L}\p{N}]+[\r\n]*"
  size_t other = n;
  if (is_other(k0)) {
    other = i;
  } else if (c0 == ' ' && j < n) {
    size_t len1;
    if (is_other(cur.class_at(j, &len1))) other = j;
  }
  if (other < n) {
    size_t e = other;
    while (e < n) {
      size_t len;
      if (!is_other(cur.class_at(e, &len))) break;
      e += len;
    }
    while (e < n && (cur.s[e] == '\r' || cur.s[e] == '\n')) ++e;
    return e;
  }
  // c0 is white space. Scan its run once for alternatives 5-7.
  size_t end = i, last_newline_end = 0, last_start = i;
  while (end < n) {
    size_t len;
    const char32_t c = cur.at(end, &len);
    if (!(cls(c) & kWhiteSpace)) break;
    if (is_newline(c)) last_newline_end = end + len;
    last_start = end;
    end += len;
  }
  // 5. \s*[\r\n]+ — backtracking from the whole run stops at its last \r or \n.
  if (last_newline_end) return last_newline_end;
  // 6. \s+(?!\S) — the whole run at the end of the text; otherwise all but its last code
  // point, which goes with what follows.
  if (end == n || last_start > i) return end == n ? end : last_start;
  // 7. \s+ — a single white-space code point before a non-space.
  return end;
}

}  // namespace qcoder::tok
