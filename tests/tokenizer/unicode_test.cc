// The Unicode layer: the generated class tables (Unicode 16.0), NFC with Unicode 9.0 data (what
// tokenizers 0.23.2 normalizes with), UTF-8 validation and Rust's lossy decoding.
#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

#include "tokenizer/nfc.h"

namespace qcoder::tok {
namespace {

std::string utf8(std::u32string_view cps) {
  std::string out;
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

std::string nfc(const std::string& s) {
  std::string out;
  return nfc_normalize(s, out) ? out : s;
}

TEST(UnicodeTables, Versions) {
  EXPECT_STREQ(unicode_version(), "16.0.0");
  EXPECT_STREQ(nfc_unicode_version(), "9.0.0");
}

TEST(UnicodeTables, WhiteSpaceIsExactlyTheWhiteSpaceProperty) {
  // Spec §1.2.3: what Oniguruma's \s matched in tokenizers 0.23.2.
  const std::u32string want =
      U"\u0009\u000A\u000B\u000C\u000D\u0020\u0085\u00A0\u1680\u2000\u2001\u2002\u2003"
      U"\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000";
  std::u32string got;
  const CharClassTable& cls = CharClassTable::get();
  for (char32_t cp = 0; cp < 0x110000; ++cp)
    if (cls(cp) & kWhiteSpace) got += cp;
  EXPECT_EQ(got, want);
  for (uint32_t not_space :
       {0x1C, 0x1D, 0x1E, 0x1F, 0x180E, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF})
    EXPECT_FALSE(cls(not_space) & kWhiteSpace) << std::hex << not_space;
}

TEST(UnicodeTables, LettersNumbersAndMarks) {
  const CharClassTable& cls = CharClassTable::get();
  for (uint32_t letter : {U'a', U'Z', U'é', U'ſ', U'Ω', U'я', U'中', U'ㄱ', U'ª', U'ʰ'})
    EXPECT_EQ(cls(letter) & 3, kLetter) << letter;
  // Letters of Unicode 14, 15, 15.1 and 16.0 are letters; Unicode 17's are not yet assigned.
  for (uint32_t letter : {0x10570, 0x31350, 0x2EBF0, 0x10D50, 0x16D43, 0x11380})
    EXPECT_EQ(cls(letter), kLetter) << std::hex << letter;
  for (uint32_t unassigned : {0x10940, 0x323B0, 0x0378, 0xE0080})
    EXPECT_EQ(cls(unassigned), 0) << std::hex << unassigned;
  // \p{N} is Nd, Nl and No.
  for (uint32_t number : {U'0', U'9', U'½', U'²', U'Ⅻ', U'٣', U'１', U'\U0001D7D8', U'\U0001E4F0',
                          U'\U00016D70', U'\U0001CCF0'})
    EXPECT_EQ(cls(number) & 3, kNumber) << std::hex << number;
  // Marks are neither letters nor numbers.
  for (uint32_t mark : {0x0301, 0x093F, 0x0E31, 0x05B7, 0x20DD})
    EXPECT_EQ(cls(mark) & 7, 0) << std::hex << mark;
  EXPECT_EQ(cls(0x110000), 0);
}

TEST(Nfc, ComposesAndMapsSingletons) {
  EXPECT_EQ(nfc("e\u0301"), "\u00e9");
  EXPECT_EQ(nfc("\u2126"), "\u03a9");              // Ohm sign
  EXPECT_EQ(nfc("\u212a"), "K");                   // Kelvin sign
  EXPECT_EQ(nfc("\u212b"), "\u00c5");              // Angstrom sign
  EXPECT_EQ(nfc("\u2000"), "\u2002");              // en quad
  EXPECT_EQ(nfc("\uf900"), "\u8c48");              // CJK compatibility ideograph
  EXPECT_EQ(nfc("\u1100\u1161\u11a8"), "\uac01");  // Hangul L V T
  EXPECT_EQ(nfc("\uac00\u11a7"), "\uac00\u11a7");  // U+11A7 is not a T jamo
  EXPECT_EQ(nfc("a\u0323\u0302"), "\u1ead");       // reordered, then composed
  EXPECT_EQ(nfc("a\u0302\u0323"), "\u1ead");
  EXPECT_EQ(nfc("\u0344"), "\u0308\u0301");  // excluded from composition
  EXPECT_EQ(nfc("\u0958"), "\u0915\u093c");  // composition exclusion
  EXPECT_EQ(nfc("\u0301e"), "\u0301e");      // a leading mark stays
  EXPECT_EQ(nfc("x\u0301\u0301"), "x\u0301\u0301");
  EXPECT_EQ(nfc("\u00e9\u0301"), "\u00e9\u0301");
  EXPECT_EQ(nfc("\U0001d15e"), "\U0001d157\U0001d165");  // musical symbol: excluded
}

TEST(Nfc, UsesUnicode9Data) {
  // Unicode 16.0 composes these (Tulu-Tigalari, Gurung Khema, Kirat Rai); Unicode 9.0, and so
  // tokenizers 0.23.2, leaves them alone.
  for (const char* s : {"\U00011382\U000113c9", "\U0001611e\U0001611e", "\U00016d63\U00016d67",
                        "\U00011935\U00011930"})
    EXPECT_EQ(nfc(s), s);
  // U+0897 (Unicode 16.0, combining class 230) is a starter for 9.0: no reordering around it.
  EXPECT_EQ(nfc("a\u0897\u0316"), "a\u0897\u0316");
  // ... while Unicode 9.0 marks do reorder.
  EXPECT_EQ(nfc("x\u0301\u0316"), "x\u0316\u0301");
}

TEST(Nfc, StableTextIsNotCopied) {
  std::string out = "untouched";
  EXPECT_FALSE(nfc_normalize("plain ASCII, 中文, 한국어, emoji 😀", out));
  EXPECT_EQ(out, "untouched");
  // Already-normal text with marks: checked, not changed.
  EXPECT_FALSE(nfc_normalize("\u00e9\u0301 \u05d0\u05b7", out));
}

TEST(Utf8, FindsTheFirstIllFormedByte) {
  EXPECT_EQ(find_invalid_utf8("plain"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8("\xF0\x9F\x98\x80 \xE4\xB8\xAD"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xC0\x80"), 2u);        // overlong
  EXPECT_EQ(find_invalid_utf8("\xE0\x80\x80"), 0u);      // overlong
  EXPECT_EQ(find_invalid_utf8("x\xED\xA0\x80"), 1u);     // surrogate
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("12345678\xE4\xB8"), 8u);  // truncated
  EXPECT_EQ(find_invalid_utf8("\x80"), 0u);
  EXPECT_EQ(find_invalid_utf8(std::string("a\0b", 3)), std::string::npos);  // NUL is valid
}

TEST(Utf8, LossyDecodingReplacesMaximalSubparts) {
  const auto lossy = [](std::string_view bytes) {
    std::string out;
    append_utf8_lossy(out, bytes);
    return out;
  };
  EXPECT_EQ(lossy("\xF0"), "\uFFFD");
  EXPECT_EQ(lossy("\xF0\x9F"), "\uFFFD");
  EXPECT_EQ(lossy("\xF0\x9F\x98"), "\uFFFD");
  EXPECT_EQ(lossy("\xC3\xC3"), "\uFFFD\uFFFD");
  EXPECT_EQ(lossy("\xC3"
                  "a"),
            "\uFFFD"
            "a");
  // The example of the Unicode Standard, §3.9 (U+FFFD substitution of maximal subparts).
  EXPECT_EQ(lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  EXPECT_EQ(lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(lossy("ok \xE4\xB8\xAD"), "ok \xE4\xB8\xAD");
}

TEST(Utf8, IncompleteTail) {
  EXPECT_EQ(incomplete_utf8_tail(""), 0u);
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98\x80"), 0u);  // complete
  EXPECT_EQ(incomplete_utf8_tail("\xE4\xB8"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("\xED\xA0"), 0u);  // can never complete (surrogate)
  EXPECT_EQ(incomplete_utf8_tail("\xC0"), 0u);      // never a lead byte
  EXPECT_EQ(incomplete_utf8_tail("\x80"), 0u);      // lone continuation
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98\x80\x80"), 0u);
  EXPECT_EQ(utf8(U"\U0001F600"), "\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace qcoder::tok
