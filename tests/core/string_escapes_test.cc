// decode_escape over each dialect's edge cases: surrogate pairs and lone halves, bad and
// truncated hex, where i stops on an error (the tokenizer reports it as a byte offset), and the
// escapes one syntax has and the other lacks.
#include "core/string_escapes.h"

#include <gtest/gtest.h>

namespace qcoder::escapes {
namespace {

struct Decoded {
  Status status;
  std::string out;
  size_t end;  // i after the call
};

// Decodes the escape at s[0] (a backslash).
Decoded decode(std::string_view s, const Dialect& d) {
  Decoded r{Status::kOk, "", 0};
  r.status = decode_escape(s, r.end, d, r.out);
  return r;
}

std::string ok(std::string_view s, const Dialect& d) {
  const Decoded r = decode(s, d);
  EXPECT_EQ(r.status, Status::kOk) << s;
  return r.out;
}

const std::string kFffd = "\xEF\xBF\xBD";
const std::string kGrinning = "\xF0\x9F\x98\x80";  // U+1F600

TEST(StringEscapes, SingleCharacterEscapesPerSyntax) {
  for (const Dialect& d : {kTokenizerJson, kJinjaStringLiteral}) {
    EXPECT_EQ(ok("\\\"", d), "\"");
    EXPECT_EQ(ok("\\\\", d), "\\");
    EXPECT_EQ(ok("\\b", d), "\b");
    EXPECT_EQ(ok("\\f", d), "\f");
    EXPECT_EQ(ok("\\n", d), "\n");
    EXPECT_EQ(ok("\\r", d), "\r");
    EXPECT_EQ(ok("\\t", d), "\t");
  }
  EXPECT_EQ(ok("\\/", kTokenizerJson), "/");
  EXPECT_EQ(ok("\\/", kPythonStrLiteral), "\\/");  // not a Python escape: kept as written
  EXPECT_EQ(ok("\\'", kPythonStrLiteral), "'");
  EXPECT_EQ(ok("\\a", kPythonStrLiteral), "\a");
  EXPECT_EQ(ok("\\v", kPythonStrLiteral), "\v");
  for (const char* json_lacks : {"\\'", "\\a", "\\v", "\\x41", "\\U0001F600", "\\0", "\\\n"}) {
    const Decoded r = decode(json_lacks, kPythonJsonLoads);
    EXPECT_EQ(r.status, Status::kUnknownEscape) << json_lacks;
    EXPECT_EQ(r.end, 2u) << json_lacks;  // just past the escape character
    EXPECT_EQ(r.out, "");
  }
}

TEST(StringEscapes, StopsAfterTheEscape) {
  const Decoded r = decode("\\u0041rest", kTokenizerJson);
  EXPECT_EQ(r.out, "A");
  EXPECT_EQ(r.end, 6u);
  EXPECT_EQ(decode("\\x41\\x42", kPythonStrLiteral).end, 4u);
  const Decoded octal = decode("\\1012", kPythonStrLiteral);  // three octal digits at most
  EXPECT_EQ(octal.out, "A");
  EXPECT_EQ(octal.end, 4u);
}

TEST(StringEscapes, EndOfInput) {
  for (const Dialect& d : {kTokenizerJson, kPythonJsonLoads, kPythonStrLiteral}) {
    const Decoded r = decode("\\", d);
    EXPECT_EQ(r.status, Status::kEndOfInput);
    EXPECT_EQ(r.end, 1u);
  }
}

TEST(StringEscapes, JsonSurrogatePairsCombine) {
  for (const Dialect& d : {kTokenizerJson, kPythonJsonLoads}) {
    const Decoded r = decode("\\ud83d\\ude00!", d);
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.out, kGrinning);
    EXPECT_EQ(r.end, 12u);
    EXPECT_EQ(ok("\\uDBFF\\uDFFF", d), "\xF4\x8F\xBF\xBF");  // U+10FFFF, upper-case hex
  }
}

TEST(StringEscapes, JsonLoneSurrogatesRejected) {
  struct Case {
    const char* text;
    Status status;
    size_t end;
  };
  for (const Case& c : {
           Case{"\\udc00", Status::kLoneLowSurrogate, 6},
           Case{"\\ud800", Status::kLoneHighSurrogate, 6},
           Case{"\\ud800\\n", Status::kLoneHighSurrogate, 6},
           Case{"\\ud800\\u0041", Status::kBadSurrogatePair, 12},
           Case{"\\ud800\\ud800", Status::kBadSurrogatePair, 12},
           Case{"\\ud800\\u00", Status::kTruncatedHex, 8},  // at the second escape's digits
           Case{"\\ud800\\u0g00", Status::kBadHex, 10},
       }) {
    const Decoded r = decode(c.text, kTokenizerJson);
    EXPECT_EQ(r.status, c.status) << c.text;
    EXPECT_EQ(r.end, c.end) << c.text;
    EXPECT_EQ(r.out, "") << c.text;
  }
}

TEST(StringEscapes, JsonLoneSurrogatesReplaced) {
  EXPECT_EQ(ok("\\ud800", kPythonJsonLoads), kFffd);
  EXPECT_EQ(ok("\\udc00", kPythonJsonLoads), kFffd);
  // The escape after a lone high half is left for the next call, whatever it is.
  for (const char* text : {"\\ud800\\u0041", "\\ud800\\ud800", "\\ud800\\u00", "\\ud800\\uzzzz"}) {
    const Decoded r = decode(text, kPythonJsonLoads);
    EXPECT_EQ(r.status, Status::kOk) << text;
    EXPECT_EQ(r.out, kFffd) << text;
    EXPECT_EQ(r.end, 6u) << text;
  }
}

TEST(StringEscapes, PythonSurrogatesNeverPair) {
  EXPECT_EQ(ok("\\ud83d", kPythonStrLiteral), kFffd);
  EXPECT_EQ(decode("\\ud83d\\ude00", kPythonStrLiteral).end, 6u);
  EXPECT_EQ(ok("\\U0000dc00", kPythonStrLiteral), kFffd);
  EXPECT_EQ(ok("\\ud83d", kJinjaStringLiteral), "\xED\xA0\xBD");  // kept, as CPython's str
  EXPECT_EQ(ok("\\ude00", kJinjaStringLiteral), "\xED\xB8\x80");
  const Dialect reject{Syntax::kPython, LoneSurrogate::kReject};
  EXPECT_EQ(decode("\\ud83d\\ude00", reject).status, Status::kLoneHighSurrogate);
  EXPECT_EQ(decode("\\ude00", reject).status, Status::kLoneLowSurrogate);
}

TEST(StringEscapes, HexDigits) {
  EXPECT_EQ(ok("\\xff", kPythonStrLiteral), "\xC3\xBF");  // U+00FF, not the byte
  EXPECT_EQ(ok("\\u20aC", kPythonStrLiteral), "\xE2\x82\xAC");
  EXPECT_EQ(ok("\\U0001F600", kPythonStrLiteral), kGrinning);
  EXPECT_EQ(ok("\\u0000", kTokenizerJson), std::string(1, '\0'));
  struct Case {
    const char* text;
    Dialect dialect;
    Status status;
    size_t end;
  };
  for (const Case& c : {
           Case{"\\u12", kTokenizerJson, Status::kTruncatedHex, 2},  // at the first digit
           Case{"\\u", kTokenizerJson, Status::kTruncatedHex, 2},
           Case{"\\u12x4", kTokenizerJson, Status::kBadHex, 5},  // just past the bad byte
           Case{"\\u12\"", kTokenizerJson, Status::kTruncatedHex, 2},
           Case{"\\u12\"}", kTokenizerJson, Status::kBadHex, 5},
           Case{"\\x4", kPythonStrLiteral, Status::kTruncatedHex, 2},
           Case{"\\x4g", kPythonStrLiteral, Status::kBadHex, 4},
           Case{"\\u-123", kPythonStrLiteral, Status::kBadHex, 3},
           Case{"\\U1234567", kJinjaStringLiteral, Status::kTruncatedHex, 2},
           Case{"\\U00110000", kJinjaStringLiteral, Status::kNotACodePoint, 10},
           Case{"\\Uffffffff", kPythonStrLiteral, Status::kNotACodePoint, 10},
       }) {
    const Decoded r = decode(c.text, c.dialect);
    EXPECT_EQ(r.status, c.status) << c.text;
    EXPECT_EQ(r.end, c.end) << c.text;
    EXPECT_EQ(r.out, "") << c.text;
  }
}

TEST(StringEscapes, PythonOnlyEscapes) {
  EXPECT_EQ(ok("\\\n", kPythonStrLiteral), "");  // line continuation
  EXPECT_EQ(ok("\\0", kPythonStrLiteral), std::string(1, '\0'));
  EXPECT_EQ(ok("\\777", kPythonStrLiteral), "\xC7\xBF");  // U+01FF
  EXPECT_EQ(ok("\\08", kPythonStrLiteral), std::string(1, '\0'));
  EXPECT_EQ(ok("\\q", kPythonStrLiteral), "\\q");
  EXPECT_EQ(ok("\\\xC3", kPythonStrLiteral), "\\\xC3");  // one byte: the caller copies the rest
  EXPECT_EQ(decode("\\N{DASH}", kPythonStrLiteral).status, Status::kNamedEscape);
  EXPECT_EQ(decode("\\N{DASH}", kPythonBytesLiteral).status, Status::kNamedEscape);
}

TEST(StringEscapes, BytesLiteralsHaveNoUnicodeEscapes) {
  EXPECT_EQ(ok("\\u1234", kPythonBytesLiteral), "\\u");
  EXPECT_EQ(ok("\\U00012345", kPythonBytesLiteral), "\\U");
  EXPECT_EQ(ok("\\x41", kPythonBytesLiteral), "A");
  EXPECT_EQ(ok("\\101", kPythonBytesLiteral), "A");
}

}  // namespace
}  // namespace qcoder::escapes
