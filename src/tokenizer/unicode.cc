#include "tokenizer/unicode.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace qcoder::tok {
namespace {

struct CodePointRange {
  char32_t first, last;
  uint8_t value;
};
struct Decomposition {
  char32_t cp;
  uint32_t offset, length;
};
struct Composition {
  char32_t first, second, composite;
};

#include "tokenizer/unicode_tables.inc"

// Well-formed UTF-8 (Unicode Table 3-7): for a lead byte, the number of continuation bytes and
// the range allowed for the first of them (the others are always 80..BF). need = -1: not a lead.
struct LeadInfo {
  int need;
  uint8_t lo, hi;
};

constexpr LeadInfo lead_info(uint8_t b) {
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  return {-1, 0, 0};
}

// Length of the well-formed prefix of the sequence starting at s[0] (a non-ASCII byte), and
// whether it is complete. A 0-length prefix means s[0] cannot start a sequence.
struct SequenceScan {
  size_t valid;
  bool complete;
};

SequenceScan scan_sequence(const uint8_t* s, size_t n) {
  const LeadInfo li = lead_info(s[0]);
  if (li.need < 0) return {0, false};
  size_t i = 1;
  for (int k = 0; k < li.need; ++k, ++i) {
    if (i >= n) return {i, false};
    const uint8_t lo = k == 0 ? li.lo : 0x80, hi = k == 0 ? li.hi : 0xBF;
    if (s[i] < lo || s[i] > hi) return {i, false};
  }
  return {i, true};
}

}  // namespace

CharClassTable::CharClassTable() {
  // Expand the ranges into one byte per code point, then share identical 128-entry blocks.
  std::vector<uint8_t> flat(0x110000, 0);
  for (const CodePointRange& r : kClassRanges)
    std::fill(flat.begin() + r.first, flat.begin() + r.last + 1, r.value);
  std::copy(flat.begin(), flat.begin() + 0x80, ascii_);
  constexpr size_t kBlock = size_t{1} << kShift;
  std::unordered_map<std::string, uint16_t> seen;
  for (size_t b = 0; b < (0x110000 >> kShift); ++b) {
    std::string block(reinterpret_cast<const char*>(flat.data() + b * kBlock), kBlock);
    auto [it, fresh] = seen.emplace(std::move(block), static_cast<uint16_t>(seen.size()));
    if (fresh) blocks_.append(reinterpret_cast<const uint8_t*>(it->first.data()), kBlock);
    index_[b] = it->second;
  }
}

const CharClassTable& CharClassTable::get() {
  static const CharClassTable table;
  return table;
}

const char* unicode_version() { return kUnicodeVersion; }
const char* nfc_unicode_version() { return kNfcUnicodeVersion; }

uint8_t combining_class(char32_t cp) {
  const auto* end = std::end(kCombiningClassRanges);
  const auto* it =
      std::upper_bound(std::begin(kCombiningClassRanges), end, cp,
                       [](char32_t c, const CodePointRange& r) { return c < r.first; });
  if (it == std::begin(kCombiningClassRanges)) return 0;
  --it;
  return cp <= it->last ? it->value : 0;
}

std::u32string_view canonical_decomposition(char32_t cp) {
  const auto* end = std::end(kDecompositions);
  const auto* it = std::lower_bound(std::begin(kDecompositions), end, cp,
                                    [](const Decomposition& d, char32_t c) { return d.cp < c; });
  if (it == end || it->cp != cp) return {};
  return {kDecompositionPool + it->offset, it->length};
}

char32_t primary_composite(char32_t first, char32_t second) {
  const auto* end = std::end(kCompositions);
  const auto* it = std::lower_bound(std::begin(kCompositions), end, std::pair{first, second},
                                    [](const Composition& c, std::pair<char32_t, char32_t> key) {
                                      return std::pair{c.first, c.second} < key;
                                    });
  if (it == end || it->first != first || it->second != second) return 0;
  return it->composite;
}

size_t utf8_sequence_length(const uint8_t* s, size_t n) {
  const SequenceScan sc = scan_sequence(s, n);
  return sc.complete ? sc.valid : 0;
}

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // Eight ASCII bytes at a time: source code is mostly ASCII.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    const SequenceScan sc = scan_sequence(s + i, n - i);
    if (!sc.complete) return i;
    i += sc.valid;
  }
  return std::string_view::npos;
}

void append_utf8_lossy(std::string& out, std::string_view bytes) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && s[run] < 0x80) ++run;
    out.append(bytes.data() + i, run - i);
    i = run;
    if (i >= n) break;
    const SequenceScan sc = scan_sequence(s + i, n - i);
    if (sc.complete) {
      out.append(bytes.data() + i, sc.valid);
      i += sc.valid;
    } else {
      out += kReplacement;  // one per maximal subpart
      i += std::max<size_t>(sc.valid, 1);
    }
  }
}

size_t incomplete_utf8_tail(std::string_view bytes) {
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const uint8_t b = s[n - k];
    if (b >= 0x80 && b <= 0xBF) continue;  // a continuation byte: look further back
    const LeadInfo li = lead_info(b);
    if (li.need < static_cast<int>(k)) return 0;  // ASCII, not a lead, or already complete
    const SequenceScan sc = scan_sequence(s + n - k, k);
    return sc.valid == k && !sc.complete ? k : 0;
  }
  return 0;
}

}  // namespace qcoder::tok
