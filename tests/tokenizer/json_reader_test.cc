// JsonReader::read_string: tokenizer.json's strict JSON escapes, with errors that name the file
// and the byte where decoding stopped (what a user sees when a vocab entry is corrupt).
#include "tokenizer/json_reader.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qcoder::tok {
namespace {

// The decoded string, or "error: " and the message.
std::string read(const std::string& text) {
  JsonReader r(text, "t.json");
  std::string out;
  try {
    r.read_string(out);
  } catch (const Error& e) {
    return std::string("error: ") + e.what();
  }
  return out;
}

TEST(JsonReaderString, SimpleEscapes) {
  EXPECT_EQ(read(R"("a\"b\\c\/d\b\f\n\r\t")"), "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(read(R"("\u0041\u00e9\u20AC")"), "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(read(R"("\u0000")"), std::string(1, '\0'));
}

TEST(JsonReaderString, SurrogatePairsCombine) {
  EXPECT_EQ(read(R"("\ud83d\ude00")"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(read(R"("\uD83D\uDE00x")"), "\xF0\x9F\x98\x80x");
  EXPECT_EQ(read(R"("\udbff\udfff")"), "\xF4\x8F\xBF\xBF");
}

TEST(JsonReaderString, LoneSurrogatesAreErrors) {
  EXPECT_EQ(read(R"("\udc00")"), "error: t.json: byte 7: lone low surrogate in a \\u escape");
  EXPECT_EQ(read(R"("\ud800")"), "error: t.json: byte 7: lone high surrogate in a \\u escape");
  EXPECT_EQ(read(R"("\ud800\n")"), "error: t.json: byte 7: lone high surrogate in a \\u escape");
  EXPECT_EQ(read(R"("\ud800\u0041")"),
            "error: t.json: byte 13: bad surrogate pair in a \\u escape");
  EXPECT_EQ(read(R"("\ud800\ud800")"),
            "error: t.json: byte 13: bad surrogate pair in a \\u escape");
}

TEST(JsonReaderString, BadAndTruncatedHex) {
  EXPECT_EQ(read(R"("\u12)"), "error: t.json: byte 3: truncated \\u escape");
  EXPECT_EQ(read(R"("\u12x4")"), "error: t.json: byte 6: bad \\u escape");
  EXPECT_EQ(read(R"("\u12")"), "error: t.json: byte 3: truncated \\u escape");
  EXPECT_EQ(read(R"("\ud800\u12)"), "error: t.json: byte 9: truncated \\u escape");
  EXPECT_EQ(read(R"("\ud800\uzzzz")"), "error: t.json: byte 10: bad \\u escape");
}

TEST(JsonReaderString, OtherEscapesAndEndsAreErrors) {
  EXPECT_EQ(read(R"("\x41")"), "error: t.json: byte 3: bad escape in a string");
  EXPECT_EQ(read(R"("\'")"), "error: t.json: byte 3: bad escape in a string");
  EXPECT_EQ(read(R"("\U0001F600")"), "error: t.json: byte 3: bad escape in a string");
  EXPECT_EQ(read("\"abc\\"), "error: t.json: byte 5: unterminated string");
  EXPECT_EQ(read("\"abc"), "error: t.json: byte 4: unterminated string");
  EXPECT_EQ(read("\"a\tb\""), "error: t.json: byte 2: control character in a string");
  EXPECT_EQ(read("\"a\xFF\""), "error: t.json: byte 2: invalid UTF-8 in a string");
}

}  // namespace
}  // namespace qcoder::tok
