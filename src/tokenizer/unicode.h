// UTF-8 and the Unicode properties the tokenizer needs, from the generated unicode_tables.inc
// (scripts/gen_unicode_tables.py): the regex classes at Unicode 16.0 and the NFC data at
// Unicode 9.0 — the versions that tokenizers 0.23.2's Oniguruma and its normalization crate use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace qcoder::tok {

// Bits of char_class(); the values match the generator.
enum CharClassBit : uint8_t {
  kLetter = 1,       // \p{L}: Lu Ll Lt Lm Lo (marks are not letters)
  kNumber = 2,       // \p{N}: Nd Nl No
  kWhiteSpace = 4,   // \s in Oniguruma: the White_Space property
  kNfcUnstable = 8,  // NFC may change it in some context (see nfc.h)
};

// Two-level lookup over all code points, built once from the generated ranges.
class CharClassTable {
 public:
  static const CharClassTable& get();
  uint8_t operator()(char32_t cp) const {
    if (cp < 0x80) return ascii_[cp];
    if (cp >= 0x110000) return 0;
    return blocks_[static_cast<size_t>(index_[cp >> kShift]) << kShift | (cp & kMask)];
  }

 private:
  CharClassTable();
  static constexpr int kShift = 7;
  static constexpr char32_t kMask = (1u << kShift) - 1;
  uint8_t ascii_[0x80];
  uint16_t index_[0x110000 >> kShift];
  std::basic_string<uint8_t> blocks_;
};

const char* unicode_version();      // of the regex classes: "16.0.0"
const char* nfc_unicode_version();  // of the NFC data: "9.0.0"

// Canonical combining class (Unicode 9.0), 0 for starters and unassigned code points.
uint8_t combining_class(char32_t cp);
// Full canonical decomposition of cp (Unicode 9.0, without Hangul), or an empty view.
std::u32string_view canonical_decomposition(char32_t cp);
// The primary composite of (first, second) (Unicode 9.0, without Hangul), or 0.
char32_t primary_composite(char32_t first, char32_t second);

// Decodes the code point at p, which must start a well-formed UTF-8 sequence.
inline char32_t decode_utf8(const uint8_t* p, size_t* len) {
  const uint8_t b = p[0];
  if (b < 0x80) {
    *len = 1;
    return b;
  }
  if (b < 0xE0) {
    *len = 2;
    return (char32_t(b & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b < 0xF0) {
    *len = 3;
    return (char32_t(b & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *len = 4;
  return (char32_t(b & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) |
         (p[3] & 0x3F);
}

using qcoder::append_utf8;  // core/utf8.h: one encoder for the tokenizer and chat

// Length of the well-formed sequence at s[0..n) (s[0] >= 0x80), or 0 when it is ill-formed.
size_t utf8_sequence_length(const uint8_t* s, size_t n);

// Byte offset of the first byte that does not start or continue a well-formed UTF-8 sequence
// (Unicode Table 3-7: no overlongs, surrogates or code points above U+10FFFF), or npos.
size_t find_invalid_utf8(std::string_view s);

// Appends bytes as Rust's String::from_utf8_lossy does (what Hugging Face decode uses): each
// maximal subpart of an ill-formed sequence becomes one U+FFFD.
void append_utf8_lossy(std::string& out, std::string_view bytes);

// Length (0-3) of the tail of bytes that is a proper prefix of a well-formed sequence: the
// bytes a streaming decoder must hold back because the next token may complete them.
size_t incomplete_utf8_tail(std::string_view bytes);

}  // namespace qcoder::tok
