// The hand-written pre-tokenizer against the regex semantics in spec §1.2.3 (Oniguruma:
// ordered alternatives, greedy backtracking, the lookahead, White_Space, letters without marks).
#include "tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

namespace qcoder::tok {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(std::string_view text) {
  Pieces out;
  pretokenize(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

TEST(PreTokenizer, WhiteSpaceLookahead) {
  EXPECT_EQ(split("a    b"), (Pieces{"a", "   ", " b"}));  // n spaces: n-1, then " b"
  EXPECT_EQ(split("a b"), (Pieces{"a", " b"}));
  EXPECT_EQ(split("x   "), (Pieces{"x", "   "}));  // a run at the end stays whole
  EXPECT_EQ(split("  1"), (Pieces{" ", " ", "1"}));
  EXPECT_EQ(split("\t\thello"), (Pieces{"\t", "\thello"}));
  EXPECT_EQ(split("x  \n  y"), (Pieces{"x", "  \n", " ", " y"}));  // \s*[\r\n]+ ends at the newline
  EXPECT_EQ(split("a\n\n\nb"), (Pieces{"a", "\n\n\n", "b"}));
  EXPECT_EQ(split("a \r\n \r\n  b"), (Pieces{"a", " \r\n \r\n", " ", " b"}));
  EXPECT_EQ(split("    return"), (Pieces{"   ", " return"}));
}

TEST(PreTokenizer, NumbersAreSingleCodePoints) {
  EXPECT_EQ(split("12345678").size(), 8u);
  EXPECT_EQ(split("½²Ⅻ٣１𝟘"), (Pieces{"½", "²", "Ⅻ", "٣", "１", "𝟘"}));
  EXPECT_EQ(split("x1"), (Pieces{"x", "1"}));
  EXPECT_EQ(split(" 1"), (Pieces{" ", "1"}));
}

TEST(PreTokenizer, Contractions) {
  EXPECT_EQ(split("don't"), (Pieces{"don", "'t"}));
  EXPECT_EQ(split("it 's"), (Pieces{"it", " '", "s"}));
  EXPECT_EQ(split("WE'RE"), (Pieces{"WE", "'RE"}));
  EXPECT_EQ(split("he'S"), (Pieces{"he", "'S"}));
  EXPECT_EQ(split("x'sa"), (Pieces{"x", "'s", "a"}));
  EXPECT_EQ(split("Y'ALL"), (Pieces{"Y", "'ALL"}));
  EXPECT_EQ(split("we'll've"), (Pieces{"we", "'ll", "'ve"}));
  EXPECT_EQ(split("don’t"), (Pieces{"don", "’t"}));  // the curly quote is not an apostrophe
  EXPECT_EQ(split("don'ſ"), (Pieces{"don", "'ſ"}));  // ſ case-folds to s
  EXPECT_EQ(split("'"), (Pieces{"'"}));
}

TEST(PreTokenizer, OtherCharacters) {
  EXPECT_EQ(split("hello, world!"), (Pieces{"hello", ",", " world", "!"}));
  EXPECT_EQ(split("f(x) -> y;\n"), (Pieces{"f", "(x", ")", " ->", " y", ";\n"}));
  EXPECT_EQ(split("a ...\r\n\r\nb"), (Pieces{"a", " ...\r\n\r\n", "b"}));
  // Marks are not letters: they fall into [^\s\p{L}\p{N}] (Devanagari vowel signs, niqqud).
  EXPECT_EQ(split("नमस्ते"), (Pieces{"नमस", "्त", "े"}));
  // U+001C..U+001F are not White_Space here (they are for Python's isspace()).
  EXPECT_EQ(split("a\x1c"
                  "b"),
            (Pieces{"a",
                    "\x1c"
                    "b"}));
  EXPECT_EQ(split("a\x1c\x1c"), (Pieces{"a", "\x1c\x1c"}));
  EXPECT_EQ(split("a\u3000\u3000b"), (Pieces{"a", "\u3000", "\u3000b"}));
  EXPECT_EQ(split(std::string("a\0b", 3)), (Pieces{"a", std::string("\0b", 2)}));
}

TEST(PreTokenizer, PiecesTileTheText) {
  const std::string text =
      "def f(x):\n\treturn x  +  1 # 'quote' ☃☃ \u00a0\u2028 \r\n 😀👍🏽 e\u0301 end   ";
  std::string joined;
  for (const auto& p : split(text)) {
    EXPECT_FALSE(p.empty());
    joined += p;
  }
  EXPECT_EQ(joined, text);
}

}  // namespace
}  // namespace qcoder::tok
